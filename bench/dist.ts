// Data-parallel training speed on this machine: real decomposition training (`lorkd decompose
// --kd none`, shuffled mixed-task batches of the bundled data, global batch 128 at 64x64, EKS
// fused) in 1 process with T threads against `lorkd launch --nproc N` with T/N threads each, plus
// the all-reduce time of one step's gradients (bench/dist-allreduce.ts). One JSON line:
//   node dist/bench/dist.js [--threads 2] [--nproc 2] [--epochs 1]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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

const dir = mkdtempSync(path.join(os.tmpdir(), 'lorkd-bench-dist-'));
try {
  const train = (out: string) => ['decompose', '--kd', 'none', '--epochs', epochs, '--input', '64', '--batch', '128', '--strategy', 'fused', '--quiet', '--json', '--out', path.join(dir, out)];
  const one = lastJson([bin, ...train('one')], { LORKD_NUM_THREADS: String(threads) });
  const many = lastJson([bin, 'launch', '--nproc', String(nproc), '--master-port', String(29600 + Math.floor(Math.random() * 300)), ...train('many')], { LORKD_NUM_THREADS: String(Math.max(1, threads / nproc)) });
  const ips = (h: { img_per_s: number }[]) => h.reduce((a, e) => a + e.img_per_s, 0) / h.length;
  const ar = spawnSync(process.execPath, [path.join(here, 'dist-allreduce.js'), '--nproc', String(nproc), '--tasks', '3'], { encoding: 'utf8' });
  const allreduce = JSON.parse(ar.stdout.trim().split('\n').at(-1)!);
  console.log(JSON.stringify({ threads, nproc, one_process_img_per_s: ips(one.history), n_process_img_per_s: ips(many.history), speedup: ips(many.history) / ips(one.history), ...allreduce }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
