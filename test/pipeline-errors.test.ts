// User mistakes in the pipeline commands: one stderr line "lorkd: ...", exit code 2, and nothing
// written or overwritten. Diverging training (NaN/inf) stops with a clear message and keeps only
// checkpoints with finite weights.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeTaskNpz, lorkd, lorkdOk, snapshot, readRawSafetensors } from './helpers/pipeline.js';
import { TaskSuite } from '../src/data/index.js';
import { Linear } from '../src/nn/linear.js';
import { SGD } from '../src/optim/index.js';
import { crossEntropy, manualSeed, setNumThreads, type Tensor } from '../src/tensor/index.js';
import { UserError } from '../src/tensor/errors.js';
import { RunDir } from '../src/experiments/run-dir.js';
import { trainLoader } from '../src/experiments/data-options.js';
import { train, nonFiniteParameter } from '../src/experiments/trainer.js';
import { loadTrainState } from '../src/experiments/train-state.js';
import { createProgress } from '../src/experiments/progress.js';
import { PLAIN_STEP } from '../src/experiments/methods/method.js';
import { trainFoundation, type FoundationOptions } from '../src/experiments/foundation.js';
import { trainDecomposition, type DecomposeOptions } from '../src/experiments/decompose.js';
import { readDecomposition } from '../src/lorkd/checkpoint.js';
import { exportAllExperts } from '../src/export/export-experts.js';

setNumThreads(1); // a shared machine, as the lorkd children (LORKD_NUM_THREADS=1)
const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-errors-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = path.join(dir, 'grey2.npz');
const B = path.join(dir, 'rgb3.npz');
const F = path.join(dir, 'f-run');
const D = path.join(dir, 'd-run');
const TINY = ['--input', '16', '--batch', '64', '--quiet'];
const foundationArgs = (tasks: string, out: string, more: string[] = []) => ['foundation', '--tasks', tasks, ...TINY, '--arch', 'resnet18', '--lr', '0.01', '--epochs', '1', ...more, '--out', out];
const decomposeArgs = (tasks: string, out: string, more: string[] = []) => ['decompose', '--tasks', tasks, ...TINY, '--foundation', path.join(F, 'foundation.safetensors'), '--strategy', 'fused', '--epochs', '1', ...more, '--out', out];

before(() => {
  writeTaskNpz(A, { classes: 2, sizes: { train: 64, val: 32, test: 32 }, seed: 1 });
  writeTaskNpz(B, { classes: 3, sizes: { train: 64, val: 32, test: 32 }, rgb: true, seed: 2 });
  lorkdOk(foundationArgs(`${A},${B}`, F));
  lorkdOk(decomposeArgs(`${A},${B}`, D));
});

/** Runs lorkd and checks: exit 2, nothing on stdout, exactly one stderr line "lorkd: ..." matching `re`. */
function expectUserError(args: string[], re: RegExp): string {
  const r = lorkd(args);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(r.status, 2, `exit status 2 expected, got ${r.status}; stderr:\n${r.stderr}`);
  assert.equal(lines.length, 1, `one stderr line expected:\n${r.stderr}`);
  assert.match(lines[0]!, /^lorkd: /);
  assert.match(lines[0]!, re);
  assert.equal(r.stdout, '');
  return lines[0]!;
}

/** The same contract in-process: a UserError with a one-line message matching `re` (CLI prints it as "lorkd: <message>", exit 2). */
async function expectUserErrorIn(fn: () => Promise<unknown> | unknown, re: RegExp): Promise<void> {
  await assert.rejects(
    async () => fn(),
    (e: unknown) => {
      assert.ok(e instanceof UserError, `a UserError expected, got ${String(e)}`);
      assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
      assert.match(e.message, re);
      return true;
    },
  );
}

const quiet = createProgress({ quiet: true });
const foundationOpts = (tasks: string[], out: string, more: Partial<FoundationOptions> = {}): FoundationOptions => ({
  tasks, input: 16, batch: 64, seed: 0, arch: 'resnet18', epochs: 1, lr: 0.01, momentum: 0.9, weightDecay: 1e-4, out, progress: quiet, ...more,
});
const decomposeOpts = (tasks: string[], out: string, more: Partial<DecomposeOptions> = {}): DecomposeOptions => ({
  tasks, input: 16, batch: 64, seed: 0, foundation: path.join(F, 'foundation.safetensors'), model: 'shufflenet_v2_x1_0', rank: 8, alpha: 10, beta: 1, kd: 'feature',
  strategy: 'fused', epochs: 1, lr: 0.05, momentum: 0.9, weightDecay: 1e-4, out, progress: quiet, ...more,
});

test('missing, corrupt and truncated npz files, unknown bundled names: one line, no run directory', async () => {
  const missing = path.join(dir, 'nope.npz');
  const corrupt = path.join(dir, 'corrupt.npz');
  const truncated = path.join(dir, 'truncated.npz');
  writeFileSync(corrupt, Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 97 + 13) % 256)));
  writeFileSync(truncated, readFileSync(A).subarray(0, 30_000));
  const out = path.join(dir, 'never');
  expectUserError(foundationArgs(`${missing},${B}`, out), /nope\.npz.*(ENOENT|not found|cannot read)/);
  expectUserError(foundationArgs(`${A},${corrupt}`, out), /corrupt\.npz/);
  expectUserError(foundationArgs(`${A},foomnist`, out), /unknown MedMNIST subset 'foomnist'.*breastmnist/);
  await expectUserErrorIn(() => trainFoundation(foundationOpts([truncated], out)), /truncated\.npz/);
  await expectUserErrorIn(() => trainDecomposition(decomposeOpts([A, missing], out)), /nope\.npz/);
  await expectUserErrorIn(() => trainDecomposition(decomposeOpts([A, B], out, { foundation: path.join(dir, 'missing.safetensors') })), /missing\.safetensors/);
  assert.ok(!existsSync(out), 'no run directory was created');
});

test('--kd with a bad value, a bad number option, eval with missing files', () => {
  const out = path.join(dir, 'never-kd');
  expectUserError(decomposeArgs(`${A},${B}`, out, ['--kd', 'bogus']), /--kd must be feature, logits or none, got "bogus"/);
  expectUserError(foundationArgs(`${A},${B}`, out, ['--epochs', 'two']), /--epochs must be an integer/);
  assert.ok(!existsSync(out));
  const before = snapshot(F);
  expectUserError(['eval', '--tasks', `${A},${B}`, ...TINY, '--run', F], /decomposition\.safetensors/);
  assert.deepEqual(snapshot(F), before, 'eval wrote nothing into the run directory');
});

test('an unwritable output directory (its parent is a regular file)', async () => {
  const under = path.join(A, 'run');
  expectUserError(foundationArgs(`${A},${B}`, under), /cannot create run directory .*grey2\.npz\/run.*ENOTDIR/);
  await expectUserErrorIn(() => trainDecomposition(decomposeOpts([A, B], under)), /cannot create run directory .*ENOTDIR/);
  const { model } = readDecomposition(path.join(D, 'decomposition.safetensors'), { strategy: 'fused' });
  try {
    await expectUserErrorIn(() => exportAllExperts(model, path.join(A, 'experts'), { input: 16, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }), /grey2\.npz\/experts/);
  } finally {
    model.dispose();
  }
  assert.ok(readFileSync(A).length > 1000, 'the npz is untouched');
});

test('an existing run directory is refused without --resume; its files are untouched', async () => {
  const f = snapshot(F);
  expectUserError(foundationArgs(`${A},${B}`, F), /already holds a run .*pass --resume/);
  assert.deepEqual(snapshot(F), f);
  const d = snapshot(D);
  await expectUserErrorIn(() => trainDecomposition(decomposeOpts([A, B], D)), /already holds a run .*pass --resume/);
  assert.deepEqual(snapshot(D), d);
});

test('--resume into a run of another shape (tasks, architecture, rank) fails before writing anything', async () => {
  const f = snapshot(F);
  const d = snapshot(D);
  expectUserError(decomposeArgs(A, D, ['--resume']), /decompose\.ckpt\.safetensors: checkpoint does not fit this model/);
  await expectUserErrorIn(() => trainDecomposition(decomposeOpts([A, B], D, { resume: true, rank: 4 })), /decompose\.ckpt\.safetensors: checkpoint does not fit this model/);
  assert.deepEqual(snapshot(D), d, 'the decomposition run is untouched (no new teacher cache)');
  await expectUserErrorIn(() => trainFoundation(foundationOpts([A], F, { resume: true })), /foundation\.ckpt\.safetensors: checkpoint does not fit this model/);
  await expectUserErrorIn(() => trainFoundation(foundationOpts([A, B], F, { resume: true, arch: 'resnet34' })), /foundation\.ckpt\.safetensors: checkpoint does not fit this model/);
  assert.deepEqual(snapshot(F), f, 'the foundation run is untouched');
});

test('a diverging run (--lr 1e30) stops with a clear message and claims only a checkpoint that exists', () => {
  const out = path.join(dir, 'nan-run');
  const line = expectUserError(foundationArgs(`${A},${B}`, out, ['--lr', '1e30', '--epochs', '3', '--batch', '128']), /\[foundation\] .*(NaN|Infinity|non-finite|diverged).*stopping/);
  const m = /epoch (\d+)/.exec(line);
  assert.ok(m, line);
  const epoch = Number(m[1]);
  const ckpt = path.join(out, 'foundation.ckpt.safetensors');
  assert.ok(!existsSync(path.join(out, 'foundation.safetensors')), 'no final model is written');
  if (epoch === 1) {
    assert.match(line, /no checkpoint was written yet/);
    assert.ok(!existsSync(ckpt));
  } else {
    assert.match(line, new RegExp(`the checkpoint of epoch ${epoch - 1} is kept in .*foundation\\.ckpt\\.safetensors`));
    const raw = readRawSafetensors(ckpt);
    assert.equal(raw.metadata.epoch, String(epoch - 2));
    for (const [k, t] of raw.tensors) if (t.dtype === 'F32') assert.ok(new Float32Array(t.bytes.buffer.slice(t.bytes.byteOffset, t.bytes.byteOffset + t.bytes.length)).every(Number.isFinite), `${k} is finite`);
  }
});

// The trainer itself, with losses that go bad on purpose in epoch 2.
function tinyTraining(out: string) {
  manualSeed(0);
  const suite = TaskSuite.fromMedMnist([A]);
  const loader = trainLoader(suite, { tasks: [A], input: 8, batch: 16, seed: 0 });
  const model = new Linear(3 * 8 * 8, suite.totalClasses);
  const optimizer = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 0 });
  const run = RunDir.open(out, { marker: 'tiny.ckpt.safetensors' });
  return { suite, loader, model, optimizer, run };
}

async function divergeInEpoch2(out: string, poison: (loss: Tensor, model: Linear) => Tensor, atLastStep: boolean): Promise<{ err: unknown; epoch1: Float32Array; model: Linear; optimizer: SGD; loader: ReturnType<typeof trainLoader> }> {
  const { loader, model, optimizer, run } = tinyTraining(out);
  let epoch = 0;
  let step = 0;
  let epoch1: Float32Array = new Float32Array();
  let err: unknown;
  try {
    await train({
      name: 'tiny', run, optimizer, scheduler: null, loader, epochs: 3, resume: false, progress: createProgress({ quiet: true }),
      method: {
        module: model,
        backward: (b, passes = PLAIN_STEP) => {
          step++;
          const l = crossEntropy(model.forward(b.images.flatten(1)), b.global);
          const bad = epoch === 1 && (atLastStep ? step === loader.numBatches : step === 1);
          const loss = bad ? poison(l, model) : l;
          passes.backward(loss);
          return loss;
        },
      },
      validate: () => {
        if (epoch === 0) epoch1 = model.weight.toArray() as Float32Array;
        epoch++;
        step = 0;
        return epoch;
      },
    });
  } catch (e) {
    err = e;
  }
  return { err, epoch1, model, optimizer, loader };
}

for (const [what, poison, atLastStep, re] of [
  ['a NaN loss at step 1 of epoch 2', (l: Tensor, _m: Linear) => l.mul(Number.NaN), false, /\[tiny\] loss became NaN at epoch 2, step 1; stopping \(the checkpoint of epoch 1 is kept in .*tiny\.ckpt\.safetensors\)/],
  // sqrt at 0: the loss stays finite, its gradient is infinite, so the weights become infinite.
  ['infinite weights after the last step of epoch 2', (l: Tensor, m: Linear) => l.add(m.weight.sub(m.weight.detach()).sqrt().sum()), true, /\[tiny\] weight (weight|bias) became non-finite \(NaN or infinity\) in epoch 2; stopping \(the checkpoint of epoch 1 is kept/],
] as const) {
  test(`trainer: ${what} stops with a one-line UserError and keeps the finite epoch-1 checkpoint`, async () => {
    const out = path.join(dir, `tiny-${atLastStep ? 'inf' : 'nan'}`);
    const { err, epoch1, model, optimizer, loader } = await divergeInEpoch2(out, poison, atLastStep);
    assert.ok(err instanceof UserError, `a UserError, got ${String(err)}`);
    assert.match(err.message, re);
    assert.ok(!err.message.includes('\n'));
    if (atLastStep) assert.notEqual(nonFiniteParameter(model), null, 'the weights really are non-finite');
    // The checkpoint is epoch 1's and restores its (finite) weights into a fresh model.
    const ckpt = path.join(out, 'tiny.ckpt.safetensors');
    assert.equal(readRawSafetensors(ckpt).metadata.epoch, '0');
    const fresh = new Linear(model.inFeatures, model.outFeatures);
    const opt = new SGD(fresh.parameters(), { lr: 0.1, momentum: 0.9 });
    const s = loadTrainState(ckpt, fresh, opt, null);
    assert.equal(s.epoch, 0);
    assert.deepEqual(Array.from(fresh.weight.toArray() as Float32Array), Array.from(epoch1));
    assert.equal(nonFiniteParameter(fresh), null);
    for (const m of [model, fresh]) m.dispose();
    for (const o of [optimizer, opt]) o.dispose();
    await loader.close();
  });
}

