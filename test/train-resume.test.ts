// Resuming inside an epoch (src/experiments/trainer.ts, checkpointSteps): a run stopped after a
// step of its second epoch and resumed from the checkpoint written inside that epoch ends with the
// same weights, momentum, loss history and lr as an uninterrupted run, bit for bit. A tiny
// conv + BatchNorm (+ Dropout, so the saved RNG state matters) + linear network on a two-task suite.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeTaskNpz } from './helpers/pipeline.js';
import { manualSeed, setNumThreads, crossEntropy, type Tensor } from '../src/tensor/index.js';
import { Sequential, Conv2d, BatchNorm2d, ReLU, AdaptiveAvgPool2d, Flatten, Linear, Dropout } from '../src/nn/index.js';
import { SGD, CosineAnnealingLR } from '../src/optim/index.js';
import { loadSuite, trainLoader } from '../src/experiments/data-options.js';
import { train, type TrainResult } from '../src/experiments/trainer.js';
import { RunDir } from '../src/experiments/run-dir.js';
import { createProgress, type Progress } from '../src/experiments/progress.js';
import { readSafetensorsMetadata } from '../src/io/safetensors.js';
import type { TaskBatch } from '../src/experiments/methods/method.js';

setNumThreads(1);
const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-train-resume-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = path.join(dir, 'a2.npz');
const B = path.join(dir, 'b3.npz');
writeTaskNpz(A, { classes: 2, sizes: { train: 22, val: 4, test: 4 }, seed: 1 });
writeTaskNpz(B, { classes: 3, sizes: { train: 17, val: 4, test: 4 }, seed: 2 });
const data = { tasks: [A, B], input: 16, batch: 6, seed: 5 };
const suite = loadSuite(data);
const EPOCHS = 3;

class Stop extends Error {}

/** Trains a fresh network in `out`; `stopAt` throws after that many steps of this call (a killed run). */
async function run(out: string, o: { resume: boolean; stopAt?: number }): Promise<{ result: TrainResult; weights: Map<string, number[]>; momentum: number[][]; lr: number }> {
  manualSeed(7);
  const net = new Sequential(new Conv2d(3, 6, 3, { padding: 1 }), new BatchNorm2d(6), new ReLU(), new Dropout(0.3), new AdaptiveAvgPool2d(1), new Flatten(), new Linear(6, suite.totalClasses));
  const opt = new SGD(net.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 });
  const sched = new CosineAnnealingLR(opt, { tMax: EPOCHS });
  let steps = 0;
  const quiet = createProgress({ quiet: true });
  const progress: Progress = {
    ...quiet,
    update: () => {
      if (o.stopAt !== undefined && ++steps === o.stopAt) throw new Stop();
    },
  };
  const method = {
    module: net,
    backward: (b: TaskBatch): Tensor => {
      const loss = crossEntropy(net.forward(b.images), b.global);
      loss.backward();
      return loss;
    },
  };
  const runDir = RunDir.open(out, { resume: true, marker: '-' });
  try {
    const result = await train({ name: 't', run: runDir, method, optimizer: opt, scheduler: sched, loader: trainLoader(suite, data), epochs: EPOCHS, resume: o.resume, checkpointSteps: 2, progress });
    const weights = new Map([...net.stateDict()].map(([k, v]) => [k, v.toNumbers()]));
    const momentum = [...opt.stateDict().tensors.values()].map((t) => t.toNumbers());
    return { result, weights, momentum, lr: opt.paramGroups[0]!.lr };
  } finally {
    opt.dispose();
    net.dispose();
  }
}

test('a run resumed from a checkpoint inside an epoch ends equal to an uninterrupted run', { timeout: 60_000 }, async () => {
  const loader = trainLoader(suite, data);
  assert.equal(loader.numBatches, 7, '39 samples in batches of 6, the single last one merged');
  const whole = await run(path.join(dir, 'whole'), { resume: false });
  const out = path.join(dir, 'stopped');
  // Stopped at step 5 of epoch 2 (7 + 5 steps): the checkpoint written after its step 4 is there.
  await assert.rejects(run(out, { resume: false, stopAt: 12 }), Stop);
  const meta = readSafetensorsMetadata(path.join(out, 't.ckpt.safetensors'));
  assert.deepEqual([meta.epoch, meta.step], ['0', '4'], 'last completed epoch 1 (0-based 0), 4 steps into epoch 2');
  const resumed = await run(out, { resume: true });
  assert.equal(resumed.result.epochsRun, 2, 'epoch 2 (continued) and epoch 3');
  assert.deepEqual([...resumed.weights.keys()], [...whole.weights.keys()]);
  for (const [k, v] of whole.weights) assert.deepEqual(resumed.weights.get(k), v, `${k} differs`);
  assert.deepEqual(resumed.momentum, whole.momentum);
  assert.equal(resumed.lr, whole.lr);
  assert.deepEqual(resumed.result.history.map((h) => h.loss), whole.result.history.map((h) => h.loss), 'the epoch losses, the continued epoch included');
  // The batches of the continued epoch are those of the uninterrupted epoch from step 5 on.
  const tail = [...loader.epoch(1, 4)].map((b) => {
    const ids = Array.from(b.info.indices);
    b.dispose();
    return ids;
  });
  const full = loader.plan(1).slice(4).map((p) => Array.from(p.indices));
  assert.deepEqual(tail, full);
});
