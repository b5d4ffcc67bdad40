// Faults through the CLI: a full disk (tmpfs), a read-only file system, a folder in the way of
// an output file, temporary files of killed runs, two runs in one folder (lock, stale lock), and
// SIGINT/SIGTERM (exit 130/143, the last good checkpoint and the exact --resume command).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeTaskNpz, lorkdSpawn, lorkdOk, lorkd, snapshot } from './helpers/pipeline.js';
import { lorkdMeasured, expectOneLine } from './helpers/hostile.js';
import { writeFileAtomic, pidAlive } from '../src/io/atomic.js';
import { LOCK_FILE } from '../src/experiments/run-dir.js';
import { UserError } from '../src/tensor/errors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-hostile-faults-'));
const mounts: string[] = [];
after(() => {
  for (const m of mounts.reverse()) spawnSync('umount', [m]);
  rmSync(dir, { recursive: true, force: true });
});
const A = path.join(dir, 'a.npz');
const B = path.join(dir, 'b.npz');
const RUN = path.join(dir, 'run');
const FAST = ['--tasks', `${A},${B}`, '--arch', 'shufflenet_v2_x0_5', '--input', '16', '--batch', '32', '--quiet'];
const foundation = (out: string, more: string[] = []) => ['foundation', ...FAST, '--epochs', '1', ...more, '--out', out];

const isRoot = process.getuid?.() === 0;
/** A tmpfs of `size` at a new folder (root only); null when it cannot be mounted. */
function tmpfs(name: string, size: string): string | null {
  if (!isRoot) return null;
  const at = path.join(dir, name);
  mkdirSync(at);
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', at]).status !== 0) return null;
  mounts.push(at);
  return at;
}
const temps = (d: string) => readdirSync(d).filter((f) => f.endsWith('.tmp'));
/** A pid no process has. */
function deadPid(): number {
  for (let p = 4_000_000; ; p--) if (!pidAlive(p)) return p;
}

before(() => {
  writeTaskNpz(A, { classes: 2, sizes: { train: 64, val: 16, test: 16 }, seed: 1 });
  writeTaskNpz(B, { classes: 3, sizes: { train: 64, val: 16, test: 16 }, rgb: true, seed: 2 });
  lorkdOk(foundation(RUN));
  lorkdOk(['decompose', ...FAST.filter((a) => a !== '--arch' && a !== 'shufflenet_v2_x0_5'), '--model', 'shufflenet_v2_x0_5', '--kd', 'none', '--foundation', path.join(RUN, 'foundation.safetensors'), '--epochs', '1', '--out', RUN]);
});

test('full disk: one line naming the file and ENOSPC, no temp file, nothing claimed, earlier files intact', { skip: !isRoot && 'needs root (mount tmpfs)' }, (t) => {
  const full = tmpfs('full', '1m');
  if (!full) return t.skip('tmpfs could not be mounted');
  writeFileSync(path.join(full, 'notes.txt'), 'keep me');
  const out = path.join(full, 'run');
  const r = lorkdMeasured(foundation(out));
  expectOneLine(r, new RegExp(`${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/foundation\\.(best\\.|ckpt\\.)?safetensors: cannot write: no space left on device \\(ENOSPC\\)$`));
  assert.deepEqual(temps(out), [], 'the temporary file is removed');
  assert.equal(existsSync(path.join(out, 'foundation.safetensors')), false, 'no model is claimed');
  assert.equal(readFileSync(path.join(full, 'notes.txt'), 'utf8'), 'keep me');
  // In-process: a failed write leaves the target as it was.
  writeFileSync(path.join(full, 'target.bin'), 'old');
  assert.throws(() => writeFileAtomic(path.join(full, 'target.bin'), new Uint8Array(4 << 20)), (e: unknown) => e instanceof UserError && /target\.bin: cannot write: no space left on device \(ENOSPC\)$/.test(e.message));
  assert.equal(readFileSync(path.join(full, 'target.bin'), 'utf8'), 'old');
  assert.deepEqual(temps(full), []);
});

test('read-only file system: eval into a read-only run, foundation into a read-only folder', { skip: !isRoot && 'needs root (mount tmpfs)' }, (t) => {
  const ro = tmpfs('ro', '64m');
  if (!ro) return t.skip('tmpfs could not be mounted');
  mkdirSync(path.join(ro, 'run'));
  for (const f of ['foundation.safetensors', 'decomposition.safetensors']) copyFileSync(path.join(RUN, f), path.join(ro, 'run', f));
  if (spawnSync('mount', ['-o', 'remount,ro', ro]).status !== 0) return t.skip('cannot remount read-only');
  const before = snapshot(ro);
  expectOneLine(lorkdMeasured(['eval', '--run', path.join(ro, 'run'), '--tasks', `${A},${B}`, '--input', '16', '--quiet']), /run directory .*ro\/run is not writable: read-only file system \(EROFS\)/);
  expectOneLine(lorkdMeasured(foundation(path.join(ro, 'new'))), /cannot create run directory .*ro\/new: read-only file system \(EROFS\)/);
  assert.deepEqual(snapshot(ro), before);
});

test('export --out an existing folder: one line (EISDIR), the folder untouched', () => {
  const folder = path.join(dir, 'a-folder');
  mkdirSync(folder);
  writeFileSync(path.join(folder, 'x'), 'x');
  expectOneLine(lorkdMeasured(['export', '--run', RUN, '--task', 'a', '--out', folder]), /a-folder: cannot write: it is a folder \(EISDIR\)$/);
  assert.deepEqual(readdirSync(folder), ['x']);
});

test('a resumed run removes the temporary files killed runs left in its run directory', () => {
  const stale = path.join(RUN, `.foundation.ckpt.safetensors.${deadPid()}.0badf00d.tmp`);
  writeFileSync(stale, new Uint8Array(1000));
  const keep = path.join(RUN, '.notes.tmp');
  writeFileSync(keep, 'not a lorkd temp file');
  lorkdOk(foundation(RUN, ['--resume']));
  assert.equal(existsSync(stale), false);
  assert.equal(existsSync(keep), true);
  assert.equal(existsSync(path.join(RUN, LOCK_FILE)), false, 'the lock is released at exit');
});

test('a folder holding a file the command would write is an existing run: nothing is overwritten without --resume', () => {
  const out = path.join(dir, 'copied');
  mkdirSync(out);
  copyFileSync(path.join(RUN, 'foundation.safetensors'), path.join(out, 'foundation.safetensors'));
  const before = snapshot(out);
  expectOneLine(lorkdMeasured(foundation(out)), /run directory .*copied already holds a run \(foundation\.safetensors\); pass --resume/);
  assert.deepEqual(snapshot(out), before);
});

/** Waits until `cond` holds (polling), failing after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('one run per folder: a second run is refused while the first holds the lock; SIGINT prints the checkpoint and the resume command', async () => {
  const out = path.join(dir, 'locked');
  const args = foundation(out, ['--epochs', '200']);
  const first = lorkdSpawn(args);
  const ckpt = path.join(out, 'foundation.ckpt.safetensors');
  try {
    await until(() => existsSync(ckpt), 120_000, 'the first checkpoint');
    const second = lorkdMeasured([...args, '--resume']);
    const line = expectOneLine(second, /run directory .*locked is in use by another lorkd run \(pid \d+/);
    assert.match(line, new RegExp(`pid ${first.child.pid}\\b`));
    first.child.kill('SIGINT');
    assert.equal(await first.exited, 130);
  } finally {
    first.child.kill('SIGKILL');
  }
  const lines = first.stderr().split('\n').filter((l) => l !== '');
  const last = lines[lines.length - 1]!;
  assert.match(last, new RegExp(`^lorkd: interrupted by SIGINT; last good checkpoint: ${ckpt.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(epoch \\d+\\); resume with: lorkd (.*)$`));
  const printed = /resume with: lorkd (.*)$/.exec(last)![1]!.split(' ');
  assert.deepEqual(printed, [...args, '--resume']);
  assert.equal(existsSync(path.join(out, LOCK_FILE)), false, 'the lock is released');
  // The printed command continues the run (with fewer epochs, so that it ends now).
  const r = lorkd([...printed, '--epochs', '1']);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(existsSync(path.join(out, 'foundation.safetensors')));
});

test('a lock left by a dead process is taken over; SIGTERM exits 143 and a second signal ends the process at once', async () => {
  const out = path.join(dir, 'stale-lock');
  mkdirSync(out);
  writeFileSync(path.join(out, LOCK_FILE), JSON.stringify({ pid: deadPid(), procStart: 1, started: 'then', command: 'foundation' }));
  const p = lorkdSpawn(foundation(out, ['--epochs', '200']));
  try {
    await until(() => readFileSync(path.join(out, LOCK_FILE), 'utf8').includes(`"pid":${p.child.pid}`), 60_000, 'the lock to be taken over');
    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 143);
  } finally {
    p.child.kill('SIGKILL');
  }
  assert.match(p.stderr(), /lorkd: interrupted by SIGTERM; (no checkpoint was written yet|last good checkpoint: .*); resume with: lorkd foundation .* --resume\n$/);
  // Two SIGINTs at once: the process ends within seconds either way (130 from the handler, or the signal itself).
  const q = lorkdSpawn(foundation(path.join(dir, 'twice'), ['--epochs', '200']));
  await until(() => existsSync(path.join(dir, 'twice', LOCK_FILE)), 60_000, 'the second run to start');
  const t0 = Date.now();
  q.child.kill('SIGINT');
  q.child.kill('SIGINT');
  const code = await q.exited;
  assert.ok(code === 130 || q.child.signalCode === 'SIGINT', `exit ${code} / ${q.child.signalCode}`);
  assert.ok(Date.now() - t0 < 10_000);
});

test('a killed process not yet reaped (a zombie) counts as dead in pidAlive, which the run-directory lock and the temporary-file cleanup ask', { skip: process.platform !== 'linux' && 'needs /proc' }, async () => {
  // sh starts a child that exits shortly, then becomes `sleep`, which never reaps it: the child
  // stays a zombie, signalable with kill(pid, 0), for as long as the sleep runs.
  const { spawn } = await import('node:child_process');
  const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 20'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const zombiePid = await new Promise<number>((resolve) => parent.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
    const state = () => {
      const stat = readFileSync(`/proc/${zombiePid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    };
    await until(() => state() === 'Z', 10_000, 'the child to exit');
    assert.equal(pidAlive(zombiePid), false, 'a zombie is not alive');
    assert.equal(pidAlive(parent.pid!), true, 'its sleeping parent is');
    assert.equal(pidAlive(process.pid), true);
  } finally {
    parent.kill('SIGKILL');
  }
});
