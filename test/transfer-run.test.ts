// lorkd transfer: every kind of starting point (expert file, foundation, the decomposition's W0
// backbone, scratch) rebuilt with its own weights and a new seeded head; a short fine-tuning run
// with its results, resume and the compression ratio; one-line errors of the command.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { UserError, manualSeed, memory, tidy } from '../src/tensor/index.js';
import { createModel } from '../src/models/registry.js';
import type { Module } from '../src/nn/module.js';
import { KfExpert, saveKfExpert } from '../src/experiments/methods/kf-expert.js';
import { saveExpertFile } from '../src/export/expert-file.js';
import { saveFoundation } from '../src/experiments/foundation.js';
import { DecompositionModel } from '../src/lorkd/decomposition.js';
import { saveDecomposition } from '../src/lorkd/checkpoint.js';
import { resolveSource } from '../src/experiments/transfer-source.js';
import { runTransfer, TRANSFER_DEFAULTS, type TransferSpec } from '../src/experiments/transfer.js';
import { createProgress } from '../src/experiments/progress.js';
import { writeTaskNpz, lorkd } from './helpers/pipeline.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-transfer-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const quiet = createProgress({ quiet: true });
const ARCH = 'shufflenet_v2_x0_5';
const isOneLine = (re: RegExp) => (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n');

const weightsEqual = (a: Module, b: Module, key: string): boolean =>
  tidy(() => a.stateDict().get(key)!.eq(b.stateDict().get(key)!).all().item() === 1);

// Fixtures: an expert (4 classes, input 32, mean 0.4), its foundation, a decomposition checkpoint.
manualSeed(1);
const expert = createModel(ARCH, { numClasses: 4 });
const expertFile = path.join(dir, 'run', 'experts', 'breast.safetensors');
const foundationFile = path.join(dir, 'run', 'foundation.safetensors');
const decompFile = path.join(dir, 'run', 'decomposition.safetensors');
{
  const { mkdirSync } = await import('node:fs');
  mkdirSync(path.dirname(expertFile), { recursive: true });
  saveExpertFile(expertFile, expert, { model: ARCH, task: 'breast', classNames: ['a', 'b', 'c', 'd'], inputSize: 32, channels: 3, resize: 'bilinear', mean: [0.4, 0.4, 0.4], std: [0.5, 0.5, 0.5] });
  const f = createModel('resnet18', { numClasses: 9 });
  saveFoundation(foundationFile, f, { model: 'resnet18', tasks: [{ name: 't', classNames: Array.from({ length: 9 }, (_, i) => String(i)) }], input: 28, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  f.dispose();
}

test('an expert file: its backbone, a new seeded head, its preprocessing; the foundation beside it gives the ratio', () => {
  const src = resolveSource({ from: expertFile });
  assert.equal(src.kind, 'expert');
  assert.equal(src.inputSize, 32);
  assert.deepEqual([...src.mean], [0.4, 0.4, 0.4]);
  assert.equal(src.foundationFile, foundationFile, 'found in the run folder above experts/');
  const f = createModel('resnet18', { numClasses: 9 });
  assert.equal(src.foundationParams, f.numParameters());
  f.dispose();
  const a = src.build(6, 0);
  const b = src.build(6, 0);
  const c = src.build(6, 1);
  try {
    assert.equal(a.fc.outFeatures, 6);
    assert.ok(weightsEqual(a, expert, 'conv1.0.weight') && weightsEqual(a, expert, 'stage3.2.branch2.0.weight'), 'backbone is the expert');
    assert.ok(weightsEqual(a, b, 'fc.weight'), 'same seed, same head');
    assert.ok(!weightsEqual(a, c, 'fc.weight'), 'another seed, another head');
  } finally {
    a.dispose();
    b.dispose();
    c.dispose();
  }
});

test("a decomposition checkpoint needs --backbone and gives its shared W0 (the paper's dagger)", () => {
  manualSeed(2);
  const dm = new DecompositionModel({ model: ARCH, tasks: [{ name: 'p', classNames: ['0', '1'] }, { name: 'q', classNames: ['0', '1', '2'] }], rank: 2, strategy: 'fused' });
  // Give the experts non-zero B factors, so W0 differs from every fused expert.
  tidy(() => {
    for (const [k, p] of dm.namedParameters()) if (k.includes('.expertB.')) p.normal_(0, 0.1);
  });
  saveDecomposition(decompFile, dm, { input_size: '40', mean: '[0.5,0.5,0.5]', std: '[0.5,0.5,0.5]' });
  assert.throws(() => resolveSource({ from: decompFile }), isOneLine(/--backbone/));
  const src = resolveSource({ from: decompFile, backbone: true });
  assert.equal(src.kind, 'backbone');
  assert.equal(src.inputSize, 40);
  assert.equal(src.foundationFile, foundationFile);
  const net = src.build(3, 0);
  try {
    const sd = dm.stateDict();
    for (const [k, t] of net.stateDict()) {
      if (k.startsWith('fc.')) continue;
      assert.ok(sd.has(k), `${k} is a backbone key of the checkpoint`);
      assert.ok(tidy(() => sd.get(k)!.eq(t).all().item() === 1), `${k} equals W0`);
    }
  } finally {
    net.dispose();
    dm.dispose();
  }
});

test("KF's deployed pair (CKN + TSN_t): both networks kept, a new head over their concatenated features", () => {
  manualSeed(5);
  const kf = new KfExpert(ARCH, ARCH, 2, 3);
  const file = path.join(dir, 'kf.safetensors');
  saveKfExpert(file, kf, { cknModel: ARCH, tsnModel: ARCH, task: 'p', classNames: ['0', '1'], inputSize: 36, resize: 'bilinear', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], channels: 3 });
  const src = resolveSource({ from: file });
  assert.equal(src.kind, 'kf-expert');
  assert.equal(src.inputSize, 36);
  const net = src.build(5, 0);
  try {
    assert.equal(net.fc.outFeatures, 5);
    assert.equal(net.fc.inFeatures, kf.fc.inFeatures);
    const keys = tidy(() => [...kf.stateDict().keys()]);
    assert.ok(weightsEqual(net, kf, keys.find((k) => k.startsWith('ckn.'))!), 'CKN weights kept');
    assert.ok(weightsEqual(net, kf, keys.find((k) => k.startsWith('tsn.') && k.endsWith('weight'))!), 'TSN weights kept');
  } finally {
    net.dispose();
    kf.dispose();
  }
});

test('a short transfer: results per seed, mean, params and ratio; resume reads finished seeds back; mismatched settings refused', async () => {
  const before = memory().liveTensors;
  const npz = path.join(dir, 'down.npz');
  writeTaskNpz(npz, { classes: 3, sizes: { train: 18, val: 3, test: 12 }, seed: 4 });
  const spec: TransferSpec = { ...TRANSFER_DEFAULTS, data: npz, shots: 4, epochs: 2, lr: 1e-3, batch: 8, seeds: [0, 1] };
  const out = path.join(dir, 'out');
  const src = resolveSource({ from: expertFile, foundation: foundationFile });
  const r = await runTransfer(src, spec, out, { progress: quiet });
  assert.equal(r.runs.length, 2);
  for (const x of r.runs) {
    assert.equal(x.n_train, 12, '4 shots x 3 classes');
    assert.equal(x.n_test, 12);
    assert.ok(x.accuracy >= 0 && x.accuracy <= 1 && Number.isFinite(x.final_loss!));
  }
  assert.ok(Math.abs(r.accuracy.mean - (r.runs[0]!.accuracy + r.runs[1]!.accuracy) / 2) < 1e-12);
  const ref = createModel(ARCH, { numClasses: 3 });
  assert.equal(r.params_deployed, ref.numParameters());
  ref.dispose();
  assert.equal(r.compression_ratio, r.params_deployed / r.params_foundation!);
  assert.equal(r.data.classes.length, 3);

  const again = await runTransfer(src, spec, out, { progress: quiet, resume: true });
  assert.deepEqual(again.runs, r.runs, 'finished seeds are read back, not retrained');
  await assert.rejects(runTransfer(src, spec, out, { progress: quiet }), isOneLine(/already holds/));
  await assert.rejects(runTransfer(src, { ...spec, lr: 1e-2 }, out, { progress: quiet, resume: true }), isOneLine(/other settings/));
  assert.ok(memory().liveTensors <= before, `no tensors leaked (${memory().liveTensors} live, ${before} before)`);
});

test('lorkd transfer: --json result from scratch, one-line errors for bad input', () => {
  const npz = path.join(dir, 'cli.npz');
  writeTaskNpz(npz, { classes: 2, sizes: { train: 8, val: 2, test: 6 }, seed: 5 });
  const ok = lorkd(['transfer', '--from', 'scratch', '--model', ARCH, '--input', '28', '--data', npz, '--epochs', '1', '--batch', '8', '--out', path.join(dir, 'cli'), '--quiet', '--json']);
  assert.equal(ok.status, 0, ok.stderr);
  const j = JSON.parse(ok.stdout.trim().split('\n').at(-1)!) as { source: { kind: string }; runs: unknown[]; compression_ratio: unknown };
  assert.equal(j.source.kind, 'scratch');
  assert.equal(j.runs.length, 1);
  assert.equal(j.compression_ratio, null);
  for (const [args, re] of [
    [['--from', path.join(dir, 'missing.safetensors'), '--data', npz], /not found/],
    [['--from', decompFile, '--data', npz], /--backbone/],
    [['--from', expertFile, '--data', path.join(dir, 'nodata')], /nodata/],
  ] as const) {
    const r = lorkd(['transfer', ...args, '--out', path.join(dir, 'err'), '--quiet']);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
