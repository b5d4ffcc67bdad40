// The deployment a user would otherwise write for one department (bench/serve.ts's `plain-ort`):
// a Node process with onnxruntime-node and nothing of lorkd's engine (libtorch is never loaded),
// serving one expert exported with `lorkd export --format onnx`. It speaks lorkd serve's protocol
// (POST /v1/predict?task=NAME -> {task, class, probs, servedBy, batch}; GET /metrics with
// lorkd_model_bytes), decodes with the same decode workers and preprocessing, micro-batches the
// same way (up to --max-batch requests within --max-wait-ms) and runs the session with
// LORKD_NUM_THREADS intra-op threads, so the load generator drives it as it drives lorkd serve.
//   node dist/bench/ort-serve.js --onnx dept0.onnx [--port 0] [--max-batch 32] [--max-wait-ms 5]
// Once listening it prints {url, port, tasks} as one JSON line.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { readOnnxHeader } from '../src/app/onnx-metadata.js';
import { DecodePool } from '../src/serve/decode-pool.js';
import { HttpError } from '../src/serve/http-error.js';
import type { OnnxPreprocessing } from '../src/export/onnx/export.js';

interface Waiting {
  input: Float32Array;
  done(probs: Float32Array, batch: number): void;
  fail(e: Error): void;
}

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`ort-serve: --${name} is required`);
  return v;
}

const file = arg('onnx');
const maxBatch = Number(arg('max-batch', '32'));
const maxWaitMs = Number(arg('max-wait-ms', '5'));
const bytes = readFileSync(file);
const md = readOnnxHeader(bytes, file).metadata;
const pre = JSON.parse(md.lorkd_preprocessing ?? 'null') as OnnxPreprocessing | null;
if (!pre || !md.lorkd_task) throw new Error(`${file}: not a lorkd ONNX expert`);
const task = md.lorkd_task;
const threads = Number(process.env.LORKD_NUM_THREADS ?? '1');
const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: threads, interOpNumThreads: 1, logSeverityLevel: 4 });
const decoder = new DecodePool();
const S = pre.input_size;
const per = 3 * S * S;
const k = pre.class_names.length;

// Micro-batching: the oldest waiting request waits at most maxWaitMs for others; one run at a time.
const queue: Waiting[] = [];
let timer: NodeJS.Timeout | null = null;
let running = false;
function schedule(): void {
  if (running || !queue.length) return;
  if (queue.length < maxBatch && !timer) timer = setTimeout(run, maxWaitMs);
  else if (queue.length >= maxBatch) void run();
}
async function run(): Promise<void> {
  if (timer) clearTimeout(timer);
  timer = null;
  if (running || !queue.length) return;
  running = true;
  const jobs = queue.splice(0, maxBatch);
  try {
    const x = new Float32Array(jobs.length * per);
    jobs.forEach((j, i) => x.set(j.input, i * per));
    const out = await session.run({ input: new ort.Tensor('float32', x, [jobs.length, 3, S, S]) }, ['logits']);
    const logits = out.logits!.data as Float32Array;
    jobs.forEach((j, i) => {
      const row = logits.subarray(i * k, (i + 1) * k);
      const m = Math.max(...row);
      const e = Float32Array.from(row, (v) => Math.exp(v - m));
      const s = e.reduce((a, b) => a + b, 0);
      j.done(e.map((v) => v / s), jobs.length);
    });
  } catch (e) {
    for (const j of jobs) j.fail(e as Error);
  } finally {
    running = false;
    schedule();
  }
}

async function body(req: IncomingMessage): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  for await (const c of req) parts.push(c as Buffer);
  return new Uint8Array(Buffer.concat(parts));
}

function send(res: ServerResponse, status: number, value: unknown, type = 'application/json'): void {
  res.writeHead(status, { 'content-type': type });
  res.end(type === 'application/json' ? JSON.stringify(value) : String(value));
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  if (req.method === 'GET' && url.pathname === '/metrics') return send(res, 200, `lorkd_model_bytes ${bytes.length}\n`, 'text/plain');
  if (req.method === 'GET' && url.pathname === '/healthz') return send(res, 200, { status: 'ok' });
  if (req.method !== 'POST' || url.pathname !== '/v1/predict') return send(res, 404, { error: `no route ${req.method} ${url.pathname}` });
  if (url.searchParams.get('task') !== task) return send(res, 404, { error: `unknown task "${url.searchParams.get('task')}"; tasks: ${task}` });
  const input = await decoder.input(await body(req), 'image', { inputSize: S, mean: pre!.mean, std: pre!.std });
  const { probs, batch } = await new Promise<{ probs: Float32Array; batch: number }>((resolve, reject) => {
    queue.push({ input, done: (p, b) => resolve({ probs: p, batch: b }), fail: reject });
    schedule();
  });
  let best = 0;
  for (let c = 1; c < k; c++) if (probs[c]! > probs[best]!) best = c;
  send(res, 200, { task, class: pre!.class_names[best], probs: Object.fromEntries(pre!.class_names.map((c, i) => [c, probs[i]])), servedBy: 'plain', batch });
}

const server = createServer((req, res) => {
  handle(req, res).catch((e: Error) => send(res, e instanceof HttpError ? e.status : 500, { error: e.message.split('\n')[0] }));
});
server.listen(Number(arg('port', '0')), '127.0.0.1', () => {
  const port = (server.address() as AddressInfo).port;
  console.log(JSON.stringify({ url: `http://127.0.0.1:${port}`, port, tasks: [task] }));
});
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.once(sig, () => {
    server.close();
    void Promise.all([decoder.close(), session.release()]).then(() => process.exit(0));
  });
}
