// Runs a PyTorch reference script with Debian's /usr/bin/python3 (null when torch is absent).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

// LORKD_PYTHON: another interpreter (a GPU machine's CUDA PyTorch, bench/gpu-check.sh).
const PY = process.env.LORKD_PYTHON ?? '/usr/bin/python3';
let available: boolean | null = null;

/** True when /usr/bin/python3 can import torch and torchvision. */
export function hasTorch(): boolean {
  if (available === null) available = existsSync(PY) && spawnSync(PY, ['-c', 'import torch, torchvision'], { stdio: 'ignore' }).status === 0;
  return available;
}

/** Folder of the Python reference scripts (bench/py in the source tree). */
function scriptPath(name: string): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const up of ['py', '../../bench/py']) {
    const p = path.resolve(here, up, name);
    if (existsSync(p)) return p;
  }
  throw new Error(`bench script ${name} not found`);
}

/** Runs bench/py/<name> with JSON args; returns its last stdout line parsed, or null without torch. */
export function runPython<T>(name: string, args: unknown, timeoutMs = 600_000): T | null {
  if (!hasTorch()) return null;
  const r = spawnSync(PY, [scriptPath(name), JSON.stringify(args)], { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, OMP_NUM_THREADS: '' } });
  if (r.status !== 0) throw new Error(`${name} failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as T;
}
