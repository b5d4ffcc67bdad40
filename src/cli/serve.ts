// lorkd serve: one HTTP service for every department (docs/SERVE.md).
import { deviceOptions, runtimeOf } from './common.js';
import { type Command, Option } from 'commander';
import { UserError } from '../tensor/errors.js';
import { emptyCache } from '../tensor/index.js';
import { MODES, type ServeMode, decompositionDepartments, expertDirDepartments } from '../serve/load.js';
import { Service } from '../serve/service.js';
import { checkBinding, startServer } from '../serve/server.js';
import { intOption, numberOption, run } from './output.js';

interface ServeCliOptions {
  decomposition?: string;
  experts?: string;
  host: string;
  port: number;
  maxBatch: number;
  maxWaitMs: number;
  maxQueue?: number;
  maxBodyBytes: number;
  maxPixels?: number;
  decodeThreads?: number;
  drainTimeoutMs: number;
  mode?: ServeMode;
  token?: string;
  input?: number;
  json?: boolean;
  quiet?: boolean;
  device: string;
  precision: string;
}

export function registerServe(program: Command): void {
  deviceOptions(program.command('serve'))
    .description('serve every department over HTTP, micro-batching their requests through one EKS forward (or per-department fused experts)')
    .option('--decomposition <file>', 'decomposition checkpoint (every task becomes a department)')
    .option('--experts <dir>', 'folder of expert files, one department each: *.safetensors (lorkd\'s engine) or *.onnx (lorkd export --format onnx, run by onnxruntime-node)')
    .option('--host <host>', 'address to bind; anything but loopback needs --token', '127.0.0.1')
    .option('--port <n>', 'port (0: any free port)', intOption('port', 0), 8080)
    .option('--max-batch <n>', 'most requests per micro-batch (all departments together)', intOption('max-batch'), 32)
    .option('--max-wait-ms <ms>', 'how long the oldest request waits for others to join its batch', numberOption('max-wait-ms'), 5)
    .option('--max-queue <n>', 'most requests waiting; past it the answer is 503 with Retry-After (default 8 x max-batch)', intOption('max-queue'))
    .option('--max-body-bytes <n>', 'largest request body', intOption('max-body-bytes'), 16 * 1024 * 1024)
    .option('--max-pixels <n>', 'most pixels (as image headers claim them) being decoded at once; past it 503 with Retry-After (default LORKD_MAX_IMAGE_PIXELS)', intOption('max-pixels'))
    .option('--decode-threads <n>', 'image decode worker threads (default: the cores, 2 to 4)', intOption('decode-threads'))
    .option('--drain-timeout-ms <ms>', 'on SIGTERM/SIGINT, how long requests in flight may take before every connection is closed', intOption('drain-timeout-ms'), 10_000)
    .addOption(new Option('--mode <mode>', 'eks: one EKS pass over mixed departments (default with --decomposition); fused: one fused expert per department (default with --experts); auto: keeps both and picks per batch from measurement').choices(MODES))
    .option('--token <token>', 'bearer token every route but /healthz requires (or set LORKD_SERVE_TOKEN)')
    .option('--input <size>', 'input side for checkpoints that do not record it', intOption('input', 8))
    .option('--quiet', 'no log lines on stderr')
    .option('--json', 'print one JSON line {url, port, mode, tasks} on stdout once listening')
    .action((o: ServeCliOptions) =>
      run(async () => {
        if (!!o.decomposition === !!o.experts) throw new UserError('give exactly one of --decomposition FILE or --experts DIR');
        const mode: ServeMode = o.mode ?? (o.experts ? 'fused' : 'eks');
        if (o.experts && mode === 'eks') throw new UserError('--mode eks needs --decomposition (expert files are already fused); use --mode fused');
        const token = o.token ?? process.env.LORKD_SERVE_TOKEN;
        checkBinding(o.host, token);
        const log = (s: string) => o.quiet || process.stderr.write(`lorkd serve: ${s}\n`);
        const defaults = o.input !== undefined ? { input: o.input } : {};
        const specs = o.decomposition ? decompositionDepartments(o.decomposition, mode, defaults) : await expertDirDepartments(o.experts!);
        const { device, precision } = runtimeOf(o);
        const service = new Service({ device, precision, mode, maxBatch: o.maxBatch, maxWaitMs: o.maxWaitMs, maxQueue: o.maxQueue ?? 8 * o.maxBatch, defaults, maxPixels: o.maxPixels, decodeThreads: o.decodeThreads }, specs);
        emptyCache(); // load-time temporaries (a checkpoint fused into experts and dropped) go back to the system
        const srv = await startServer(service, { host: o.host, port: o.port, token, maxBodyBytes: o.maxBodyBytes, drainMs: o.drainTimeoutMs });
        const tasks = service.departments.list().map((d) => d.task);
        log(`listening on ${srv.url} (mode ${mode}, max batch ${o.maxBatch}, max wait ${o.maxWaitMs} ms; ${tasks.length} departments: ${tasks.join(', ')})`);
        if (o.json) console.log(JSON.stringify({ url: srv.url, port: srv.port, mode, tasks }));
        // The service drains on SIGTERM/SIGINT instead of the CLI's default of exiting at once
        // (src/experiments/signals.ts, installed by run()): replace those handlers.
        for (const sig of ['SIGTERM', 'SIGINT'] as const) process.removeAllListeners(sig);
        await new Promise<void>((resolve) => {
          const stop = (sig: string) => {
            log(`${sig}: draining ${service.inFlight} requests in flight`);
            void srv.close().then(resolve);
          };
          process.once('SIGTERM', () => stop('SIGTERM'));
          process.once('SIGINT', () => stop('SIGINT'));
        });
        log('stopped');
        process.exit(0); // nothing is left to wait for: the drain's deadline has passed or everything was answered
      }),
    );
}
