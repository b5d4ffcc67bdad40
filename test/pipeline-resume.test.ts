// Resuming: a foundation run and a decomposition run (EKS strategy fused) killed with SIGKILL in
// the middle of epoch 2 and continued with --resume end with bit-identical weights to an
// uninterrupted run with the same seed (on a difference, a second uninterrupted run tells
// nondeterminism from a resume bug). Also: the seed sets the initialisation. Every lorkd child runs with LORKD_NUM_THREADS=1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeTaskNpz, lorkdOk, lorkdSpawn, lastJson, differingTensors, readRawSafetensors } from './helpers/pipeline.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-resume-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = path.join(dir, 'grey2.npz');
const B = path.join(dir, 'rgb3.npz');
const EPOCHS = 3;
/** 6 steps per epoch, so a kill lands inside epoch 2. */
const DATA = () => ['--tasks', `${A},${B}`, '--input', '16', '--batch', '32', '--seed', '5'];
const FOUNDATION = (out: string, epochs = EPOCHS) => ['foundation', ...DATA(), '--arch', 'resnet18', '--lr', '0.01', '--epochs', String(epochs), '--out', out];
const DECOMPOSE = (out: string, foundation: string) => ['decompose', ...DATA(), '--foundation', foundation, '--strategy', 'fused', '--epochs', String(EPOCHS), '--out', out];

interface History {
  history: { epoch: number; loss: number; val: number | null; lr: number }[];
  best_epoch: number;
}
const numbers = (h: History) => h.history.map((e) => [e.epoch, e.loss, e.val, e.lr]);

before(() => {
  writeTaskNpz(A, { classes: 2, sizes: { train: 96, val: 32, test: 32 }, seed: 1 });
  writeTaskNpz(B, { classes: 3, sizes: { train: 96, val: 32, test: 32 }, rgb: true, seed: 2 });
});

/**
 * Starts `args`, waits until stderr shows a step of epoch 2 (or the epoch-1 checkpoint exists
 * and epoch 2 began), kills the process with SIGKILL, and returns its stderr.
 */
async function killInEpoch2(args: string[], name: string): Promise<string> {
  const p = lorkdSpawn(args);
  const started = new RegExp(`\\[${name}\\] epoch 2/${EPOCHS} \\d+/\\d+`);
  const deadline = Date.now() + 240_000;
  let code: number | null | undefined;
  void p.exited.then((c) => (code = c));
  while (!started.test(p.stderr())) {
    if (code !== undefined) assert.fail(`lorkd exited (${code}) before epoch 2:\n${p.stderr()}`);
    if (Date.now() > deadline) {
      p.child.kill('SIGKILL');
      assert.fail(`epoch 2 did not start in time:\n${p.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  p.child.kill('SIGKILL');
  await p.exited;
  assert.equal(p.child.signalCode, 'SIGKILL', 'the run was killed, not finished');
  return p.stderr();
}

/** After the kill: a checkpoint of epoch 1 or 2 exists, the final model does not. */
function checkKilledState(out: string, name: string, final: string): void {
  assert.ok(!existsSync(path.join(out, final)), `${final} must not exist after the kill`);
  const ckpt = path.join(out, `${name}.ckpt.safetensors`);
  assert.ok(existsSync(ckpt), 'the epoch-1 checkpoint exists');
  const epoch = Number(readRawSafetensors(ckpt).metadata.epoch);
  assert.ok(epoch === 0 || epoch === 1, `checkpoint of an unfinished run (epoch ${epoch})`);
}

test('seeded initialisation: same --seed gives identical weights, another seed different ones', () => {
  const args = (seed: string, out: string) => ['foundation', '--tasks', `${A},${B}`, '--input', '16', '--batch', '64', '--seed', seed, '--arch', 'resnet18', '--epochs', '0', '--quiet', '--out', out];
  const s1 = path.join(dir, 'init-1a');
  const s1b = path.join(dir, 'init-1b');
  const s2 = path.join(dir, 'init-2');
  lorkdOk(args('1', s1));
  lorkdOk(args('1', s1b));
  lorkdOk(args('2', s2));
  const f = (d: string) => path.join(d, 'foundation.safetensors');
  assert.deepEqual(differingTensors(f(s1), f(s1b)), []);
  const diff = differingTensors(f(s1), f(s2));
  assert.ok(diff.includes('conv1.weight') && diff.includes('fc.weight'), `seed 2 must initialise differently (differing: ${diff.join(', ')})`);
  for (const d of [s1, s1b, s2]) rmSync(d, { recursive: true, force: true });
});

/**
 * Compares the resumed run's file with the uninterrupted one. On a difference, a second
 * uninterrupted run tells whether the runs themselves are nondeterministic or resuming is wrong.
 */
function assertSameWeights(ref: string, resumed: string, rerun: () => string): void {
  const diff = differingTensors(ref, resumed);
  if (diff.length === 0) return;
  const again = differingTensors(ref, rerun());
  assert.fail(
    `${diff.length} tensors differ after resuming (${diff.slice(0, 5).join(', ')}); two uninterrupted runs ` +
      (again.length ? `differ too (${again.length} tensors): the runs are not deterministic` : 'are identical: resuming is not exact'),
  );
}

let foundation = '';
test('foundation: killed in epoch 2 and resumed gives the uninterrupted run\'s weights bit for bit', async () => {
  const ref = path.join(dir, 'f-ref');
  const h1 = lastJson<History>(lorkdOk([...FOUNDATION(ref), '--quiet', '--json']).stdout);
  assert.equal(h1.history.length, EPOCHS);
  const out = path.join(dir, 'f-killed');
  await killInEpoch2(FOUNDATION(out), 'foundation');
  checkKilledState(out, 'foundation', 'foundation.safetensors');
  const r = lorkdOk([...FOUNDATION(out), '--resume', '--json']);
  assert.match(r.stderr, /\[foundation\] resuming after epoch [12]\/3/);
  const fa = path.join(ref, 'foundation.safetensors');
  const fb = path.join(out, 'foundation.safetensors');
  assertSameWeights(fa, fb, () => {
    const again = path.join(dir, 'f-ref2');
    lorkdOk([...FOUNDATION(again), '--quiet']);
    return path.join(again, 'foundation.safetensors');
  });
  assert.deepEqual(readRawSafetensors(fb).metadata, readRawSafetensors(fa).metadata);
  const h = lastJson<History>(r.stdout);
  assert.deepEqual(numbers(h), numbers(h1), 'the resumed run reports the uninterrupted history');
  assert.equal(h.best_epoch, h1.best_epoch);
  rmSync(out, { recursive: true, force: true });
  foundation = fa;
});

test('decomposition (fused): killed in epoch 2 and resumed gives the uninterrupted run\'s weights bit for bit', async (t) => {
  if (!foundation) return t.skip('the foundation test failed');
  const ref = path.join(dir, 'd-ref');
  const h1 = lastJson<History>(lorkdOk([...DECOMPOSE(ref, foundation), '--quiet', '--json']).stdout);
  assert.equal(h1.history.length, EPOCHS);
  const out = path.join(dir, 'd-killed');
  await killInEpoch2(DECOMPOSE(out, foundation), 'decompose');
  checkKilledState(out, 'decompose', 'decomposition.safetensors');
  const r = lorkdOk([...DECOMPOSE(out, foundation), '--resume', '--json']);
  assert.match(r.stderr, /\[decompose\] teacher outputs from cache/, 'the resumed run reuses the cached teacher outputs');
  assert.match(r.stderr, /\[decompose\] resuming after epoch [12]\/3/);
  const da = path.join(ref, 'decomposition.safetensors');
  const db = path.join(out, 'decomposition.safetensors');
  assertSameWeights(da, db, () => {
    const again = path.join(dir, 'd-ref2');
    lorkdOk([...DECOMPOSE(again, foundation), '--quiet']);
    return path.join(again, 'decomposition.safetensors');
  });
  assert.ok(readRawSafetensors(db).tensors.size > 100, 'the file holds the whole model');
  assert.equal(readRawSafetensors(db).metadata.config, readRawSafetensors(da).metadata.config);
  const h = lastJson<History>(r.stdout);
  assert.deepEqual(numbers(h), numbers(h1), 'the resumed run reports the uninterrupted history');
});
