// Data-parallel training speed on this machine: real decomposition training (`lorkd decompose
// --kd none`, shuffled mixed-task batches of the bundled data, global batch 128 at 64x64, EKS
// fused) in 1 process with T threads against `lorkd launch --nproc N` with T/N threads each, with
// the gradients all-reduced while backward runs (DDP's Reducer) and once after it (`launch
// --no-overlap`), plus the all-reduce time of one step's gradients (bench/dist-allreduce.ts). The
// load average before and after is recorded: a busy machine's figures are not comparable. One JSON line:
//   node dist/bench/dist.js [--threads 2] [--nproc 2] [--epochs 1]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { watchMachine } from './machine.js';

const arg = (name: string, d: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : d;
};
const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.resolve(here, '../../bin/lorkd.js');
const threads = Number(arg('threads', '2'));
const nproc = Number(arg('nproc', '2'));
const epochs = arg('epochs', '1');

function lastJson(args: string[], env: Record<string, string>): { history: { img_per_s: number; seconds: number }[] } {
  const r = spawnSync(process.execPath, args, { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr.split('\n').filter((l) => l.startsWith('lorkd')).join(' ')}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

const watch = watchMachine();
const dir = mkdtempSync(path.join(os.tmpdir(), 'lorkd-bench-dist-'));
try {
  const train = (out: string) => ['decompose', '--kd', 'none', '--epochs', epochs, '--input', '64', '--batch', '128', '--strategy', 'fused', '--quiet', '--json', '--out', path.join(dir, out)];
  const one = lastJson([bin, ...train('one')], { LORKD_NUM_THREADS: String(threads) });
  const launched = (out: string, extra: string[]) =>
    lastJson([bin, 'launch', '--nproc', String(nproc), '--master-port', String(29600 + Math.floor(Math.random() * 300)), ...extra, ...train(out)], { LORKD_NUM_THREADS: String(Math.max(1, threads / nproc)) });
  const many = launched('many', []);
  const after = launched('after', ['--no-overlap']);
  const ips = (h: { img_per_s: number }[]) => h.reduce((a, e) => a + e.img_per_s, 0) / h.length;
  // Step time of the global batch (128 images) in milliseconds.
  const stepMs = (h: { img_per_s: number }[]) => (1000 * 128) / ips(h);
  const ar = spawnSync(process.execPath, [path.join(here, 'dist-allreduce.js'), '--nproc', String(nproc), '--tasks', '3'], { encoding: 'utf8' });
  const allreduce = JSON.parse(ar.stdout.trim().split('\n').at(-1)!);
  console.log(
    JSON.stringify({
      threads, nproc, machine: watch.stop(),
      one_process_img_per_s: ips(one.history), n_process_img_per_s: ips(many.history), speedup: ips(many.history) / ips(one.history),
      step_ms_overlapped: stepMs(many.history), step_ms_after_backward: stepMs(after.history), overlap_gain: stepMs(after.history) / stepMs(many.history),
      ...allreduce,
    }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
