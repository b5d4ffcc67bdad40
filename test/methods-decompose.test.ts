// `lorkd decompose` is the LoRKD method trained by the one trainer: --kd none needs no foundation
// (CE only), a KD mode without one is a one-line error; the saved decomposition carries the
// preprocessing record and gives the training-time model's accuracy when loaded.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeTaskNpz } from './helpers/pipeline.js';
import { trainDecomposition } from '../src/experiments/decompose.js';
import { createProgress } from '../src/experiments/progress.js';
import { evalDecomposition } from '../src/experiments/evaluate.js';
import { evalLoader, loadSuite } from '../src/experiments/data-options.js';
import { readDecomposition } from '../src/lorkd/checkpoint.js';
import { parsePreprocessing } from '../src/data/preprocessing.js';
import { UserError } from '../src/tensor/errors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-decompose-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = path.join(dir, 'a2.npz');
const B = path.join(dir, 'b3.npz');
writeTaskNpz(A, { classes: 2, sizes: { train: 24, val: 12, test: 12 }, seed: 1 });
writeTaskNpz(B, { classes: 3, sizes: { train: 24, val: 12, test: 12 }, seed: 2 });
const BASE = {
  tasks: [A, B], input: 16, batch: 12, seed: 0, model: 'shufflenet_v2_x0_5', rank: 2, alpha: 10, beta: 1, strategy: 'fused' as const,
  epochs: 1, lr: 0.01, momentum: 0.9, weightDecay: 1e-4, progress: createProgress({ quiet: true }),
};

test('--kd none trains without a foundation; the file carries the preprocessing record and reloads to the same accuracy', async () => {
  const out = path.join(dir, 'none');
  const r = await trainDecomposition({ ...BASE, kd: 'none', out });
  try {
    assert.ok(existsSync(r.file));
    const loaded = readDecomposition(r.file, { strategy: 'fused' });
    assert.deepEqual(parsePreprocessing(loaded.metadata, r.file), { inputSize: 16, resize: 'bilinear', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], channels: 3 });
    assert.equal(loaded.config.rank, 2);
    assert.equal(loaded.metadata.kd, 'none');
    const suite = loadSuite(BASE);
    const test = evalLoader(suite, BASE, 'test');
    const back = loaded.model.toChannelsLast();
    assert.deepEqual(evalDecomposition(back, suite, test), evalDecomposition(r.dm, suite, test));
    back.dispose();
  } finally {
    r.dm.dispose();
  }
});

test('a KD mode without --foundation is a one-line error before anything is written', async () => {
  const out = path.join(dir, 'feature');
  await assert.rejects(trainDecomposition({ ...BASE, kd: 'feature', out }), (e: Error) => e instanceof UserError && /--kd feature distils from a foundation model: give --foundation FILE \(or --kd none\)/.test(e.message));
  assert.ok(!existsSync(out));
});
