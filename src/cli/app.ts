// lorkd app: the browser app that runs exported .onnx experts on the user's own images, in the
// browser (onnxruntime-web). --experts serves it from this machine; --build writes it as a static site.
import type { Command } from 'commander';
import { UserError } from '../tensor/errors.js';
import { planBytes, planSite, writeSite } from '../app/site-plan.js';
import { serveSite } from '../app/server.js';
import { emit, intOption, run } from './output.js';

interface AppOptions {
  experts?: string;
  build?: string;
  out?: string;
  port: number;
  host: string;
  json?: boolean;
}

const portOption = (v: string): number => {
  const n = intOption('port', 0)(v);
  if (n > 65535) throw new UserError(`--port must be at most 65535, got "${v}"`);
  return n;
};

export function registerApp(program: Command): void {
  program
    .command('app')
    .description('browser app: classify PNG/JPEG/DICOM files with .onnx experts, computed locally in the browser')
    .option('--experts <dir>', 'serve the app for the .onnx experts in this folder (lorkd export --format onnx --all)')
    .option('--build <dir>', 'write the app for the .onnx experts in this folder as a static site (with --out)')
    .option('--out <site>', 'folder for the static site (new, empty, or a site built before)')
    .option('--port <n>', 'port to serve on (0: any free port)', portOption, 8080)
    .option('--host <addr>', 'address to listen on (127.0.0.1: this machine only)', '127.0.0.1')
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      '\nExamples:\n  lorkd app --experts experts/                 serve on http://127.0.0.1:8080/\n  lorkd app --build experts/ --out site/       write a static site (serve it with COOP/COEP headers)',
    )
    .action((o: AppOptions) =>
      run(async () => {
        if (!!o.experts === !!o.build) throw new UserError('give either --experts DIR (serve) or --build DIR --out SITE (write a static site)');
        if (o.build) {
          if (!o.out) throw new UserError('--build needs --out SITE (the folder to write the site to)');
          const plan = planSite(o.build);
          writeSite(plan, o.out);
          const bytes = planBytes(plan);
          emit(!!o.json, { site: o.out, files: plan.files.size, bytes, experts: plan.manifest.experts }, () =>
            [
              `wrote ${plan.files.size} files (${(bytes / 1e6).toFixed(1)} MB) to ${o.out}`,
              ...plan.manifest.experts.map((e) => `  ${e.task}: ${e.model}, ${e.class_names.length} classes, input ${e.input_size}`),
              'serve it with the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp (threads), .wasm as application/wasm',
            ].join('\n'),
          );
          return;
        }
        if (o.out) throw new UserError('--out goes with --build; --experts serves the app without writing files');
        const plan = planSite(o.experts!);
        const srv = await serveSite(plan, { port: o.port, host: o.host });
        emit(!!o.json, { url: srv.url, experts: plan.manifest.experts }, () =>
          [`lorkd app: ${srv.url}`, ...plan.manifest.experts.map((e) => `  ${e.task}: ${e.model}, ${e.class_names.length} classes`)].join('\n'),
        );
        process.stderr.write(`serving on ${srv.url} (images stay in the browser; Ctrl-C stops)\n`);
        await new Promise<void>((resolve) => {
          const stop = (): void => {
            void srv.close().then(resolve);
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
      }),
    );
}
