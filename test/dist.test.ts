// Data-parallel training on c10d (Gloo, 127.0.0.1): 2 processes train to the same weights as one
// process with the same global batch and seed (DDP's Reducer, the after-backward all-reduce, and
// SyncBatchNorm); a rank that dies makes the other exit with one line; lorkd launch refuses a port
// in use and an unreachable master. Skips where the addon was built without c10d.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { distAvailable } from '../src/dist/index.js';
import { loadSafetensors } from '../src/io/safetensors.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const worker = path.join(here, 'helpers/dist-worker.js');
const bin = path.resolve(here, '../../bin/lorkd.js');
const skip = distAvailable() ? false : 'the native addon was built without c10d (libgloo-dev missing)';

interface Exit {
  code: number | null;
  stderr: string;
  ms: number;
}
function run(args: string[], env: Record<string, string>, o: { detached?: boolean; onSpawn?: (pid: number) => void } = {}): Promise<Exit> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const c = spawn(process.execPath, args, { env: { ...process.env, LORKD_NUM_THREADS: '1', ...env }, stdio: ['ignore', 'ignore', 'pipe'], detached: o.detached });
    o.onSpawn?.(c.pid!);
    let stderr = '';
    c.stderr.on('data', (d) => (stderr += d));
    c.on('exit', (code) => resolve({ code, stderr, ms: Date.now() - t0 }));
  });
}
async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}
async function twoRanks(out: string, mode: string, extra: Record<string, string> = {}): Promise<Exit[]> {
  const port = String(await freePort());
  const env = (r: number) => ({ RANK: String(r), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, LORKD_DIST_TIMEOUT: '20', ...extra });
  return Promise.all([run([worker, out, mode], env(0)), run([worker, out, mode], env(1))]);
}
function maxDiff(a: string, b: string): number {
  const x = loadSafetensors(a).tensors;
  const y = loadSafetensors(b).tensors;
  assert.deepEqual([...x.keys()].sort(), [...y.keys()].sort());
  let m = 0;
  for (const [k, t] of x) {
    const u = t.toArray();
    const v = y.get(k)!.toArray();
    for (let i = 0; i < u.length; i++) m = Math.max(m, Math.abs(Number(u[i]) - Number(v[i])));
  }
  for (const t of [...x.values(), ...y.values()]) t.dispose();
  return m;
}

for (const mode of ['plain', 'after', 'syncbn']) {
  test(`2 processes train to the weights of 1 process (${mode})`, { skip, timeout: 120_000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lorkd-dist-'));
    try {
      const one = await run([worker, path.join(dir, 'one.safetensors'), mode], {});
      assert.equal(one.code, 0, one.stderr);
      const two = await twoRanks(path.join(dir, 'two.safetensors'), mode);
      for (const r of two) assert.equal(r.code, 0, r.stderr);
      const d = maxDiff(path.join(dir, 'one.safetensors'), path.join(dir, 'two.safetensors'));
      assert.ok(d < 1e-5, `max weight difference ${d}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('2 processes with SyncBatchNorm train the decomposition model (task-sorted shards, float64) to the weights of 1 process', { skip, timeout: 120_000 }, async () => {
  // Two steps: BatchNorm over 4-row shards amplifies float64 rounding step by step (1e-13 after
  // one step, 2e-11 after two, 1e-7 after four, measured), so the comparison stops at two.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lorkd-dist-'));
  try {
    const one = await run([worker, path.join(dir, 'one.safetensors'), 'dm', '2'], {});
    assert.equal(one.code, 0, one.stderr);
    const port = String(await freePort());
    const env = (r: number) => ({ RANK: String(r), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, LORKD_DIST_TIMEOUT: '30' });
    const two = await Promise.all([0, 1].map((r) => run([worker, path.join(dir, 'two.safetensors'), 'dm', '2'], env(r))));
    for (const r of two) assert.equal(r.code, 0, r.stderr);
    const d = maxDiff(path.join(dir, 'one.safetensors'), path.join(dir, 'two.safetensors'));
    assert.ok(d < 1e-8, `max weight difference ${d}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without SyncBatchNorm, per-rank BatchNorm statistics give other weights (the test above can fail)', { skip, timeout: 120_000 }, async () => {
  // The syncbn worker with SyncBatchNorm turned off: BatchNorm over each rank's half batch.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lorkd-dist-'));
  try {
    const one = await run([worker, path.join(dir, 'one.safetensors'), 'bn'], {});
    assert.equal(one.code, 0, one.stderr);
    const two = await twoRanks(path.join(dir, 'two.safetensors'), 'bn');
    for (const r of two) assert.equal(r.code, 0, r.stderr);
    assert.ok(maxDiff(path.join(dir, 'one.safetensors'), path.join(dir, 'two.safetensors')) > 1e-4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a rank that dies makes the other exit with one line within the timeout', { skip, timeout: 120_000 }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lorkd-dist-'));
  try {
    const [r0, r1] = await twoRanks(path.join(dir, 'x.safetensors'), 'die', { LORKD_DIST_TIMEOUT: '30' });
    assert.equal(r1!.code, 3);
    assert.equal(r0!.code, 2, r0!.stderr);
    const lines = r0!.stderr.split('\n').filter((l) => l.startsWith('lorkd:'));
    assert.equal(lines.length, 1, r0!.stderr);
    assert.match(lines[0]!, /rank 0: a peer process died or did not answer within 30 s/);
    assert.ok(r0!.ms < 30_000, `took ${r0!.ms} ms`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lorkd launch: a port in use is refused in one line', { skip, timeout: 60_000 }, async () => {
  const server = net.createServer();
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
  try {
    const r = await run([bin, 'launch', '--nproc', '2', '--master-port', String(port), 'params', '--tasks', '3'], {});
    assert.equal(r.code, 2);
    assert.match(r.stderr.trim(), new RegExp(`^lorkd: port ${port} is in use on 127.0.0.1`));
  } finally {
    server.close();
  }
});

test('an unreachable master is a one-line error after the timeout', { skip, timeout: 60_000 }, async () => {
  const port = String(await freePort());
  const r = await run([worker, '/nonexistent/x', 'plain'], { RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, LORKD_DIST_TIMEOUT: '3' });
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('lorkd:'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /rank 1: could not reach the master 127\.0\.0\.1:\d+ within 3 s/);
});

test('lorkd launch: a 2-process decompose killed with SIGKILL resumes to the weights of an uninterrupted one', { skip, timeout: 300_000 }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lorkd-dist-'));
  const args = (out: string, port: number, extra: string[] = []) => [bin, 'launch', '--nproc', '2', '--master-port', String(port), 'decompose', '--tasks', 'breastmnist', '--kd', 'none', '--epochs', '3', '--input', '24', '--batch', '64', '--strategy', 'fused', '--quiet', '--out', out, ...extra];
  try {
    const full = await run(args(path.join(dir, 'full'), await freePort()), {});
    assert.equal(full.code, 0, full.stderr);
    // Kill the whole launch (launcher and both ranks) once the first epoch's checkpoint exists.
    let pid = 0;
    const ckpt = path.join(dir, 'cut', 'decompose.ckpt.safetensors');
    const killed = run(args(path.join(dir, 'cut'), await freePort()), {}, { detached: true, onSpawn: (p) => (pid = p) });
    while (!existsSync(ckpt)) await new Promise((r) => setTimeout(r, 100));
    process.kill(-pid, 'SIGKILL');
    await killed;
    const resumed = await run(args(path.join(dir, 'cut'), await freePort(), ['--resume']), {});
    assert.equal(resumed.code, 0, resumed.stderr);
    const d = maxDiff(path.join(dir, 'full', 'decomposition.safetensors'), path.join(dir, 'cut', 'decomposition.safetensors'));
    assert.equal(d, 0, `resumed weights differ by ${d}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
