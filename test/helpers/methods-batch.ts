// Task batches for the method tests: rows sorted by task (as the loader's collate makes them).
import assert from 'node:assert/strict';
import { type Tensor, randn, tensor, keep, tidy, memory } from '../../src/tensor/index.js';
import { SGD } from '../../src/optim/index.js';
import { Routing } from '../../src/lorkd/routing.js';
import type { Method, MethodContext, TaskBatch } from '../../src/experiments/methods/method.js';

export const TINY_TASKS: MethodContext['tasks'] = [
  { name: 'breast', classNames: ['benign', 'malignant'], classOffset: 0 },
  { name: 'retina', classNames: ['0', '1', '2'], classOffset: 2 },
  { name: 'pneumonia', classNames: ['normal', 'pneumonia'], classOffset: 5 },
];

/** A context for tiny tests (ShuffleNetV2 x0.5, no KD). */
export function tinyContext(o: Partial<MethodContext> = {}): MethodContext {
  return { tasks: TINY_TASKS, model: 'shufflenet_v2_x0_5', inChannels: 3, channelsLast: false, kd: null, ...o };
}

/**
 * A fixed batch: counts[t] rows of task t at size x size, labels cycling through each task's
 * classes, teacher rows 0..B-1 (owned by the batch; dispose() frees it).
 */
export function taskBatch(counts: number[], size = 16, tasks = TINY_TASKS): TaskBatch {
  const routing = new Routing(counts);
  const B = routing.batchSize;
  const local: number[] = [];
  const global: number[] = [];
  const taskIds: number[] = [];
  counts.forEach((c, t) => {
    for (let i = 0; i < c; i++) {
      const l = i % tasks[t]!.classNames.length;
      local.push(l);
      global.push(l + tasks[t]!.classOffset);
      taskIds.push(t);
    }
  });
  const owned: Tensor[] = tidy(() => [randn([B, 3, size, size]), tensor(local, [B], { dtype: 'int64' }), tensor(global, [B], { dtype: 'int64' }), tensor([...Array(B).keys()], [B], { dtype: 'int64' })]).map(keep);
  const [images, localT, globalT, rows] = owned as [Tensor, Tensor, Tensor, Tensor];
  return {
    images, local: localT, global: globalT, routing, teacherRows: rows, size: B,
    info: { indices: Int32Array.from([...Array(B).keys()]), flipped: new Uint8Array(B), taskIds: Int32Array.from(taskIds), local: Int32Array.from(local) },
    dispose() {
      owned.forEach((t) => t.dispose());
      routing.dispose();
    },
  };
}

/**
 * `steps` plain SGD steps (lr 0.2) of method m on a fixed batch; returns the losses. Asserts that
 * the live tensors stay flat from step to step (nothing leaks).
 */
export function sgdSteps(m: Method, batch: TaskBatch, steps: number): number[] {
  const opt = new SGD(m.module.parameters(), { lr: 0.2 });
  const losses: number[] = [];
  const live: number[] = [];
  try {
    for (let s = 0; s < steps; s++) {
      tidy(() => {
        m.module.zeroGrad();
        losses.push(m.backward(batch).item());
        opt.step();
      });
      live.push(memory().liveTensors);
    }
  } finally {
    opt.dispose();
  }
  assert.ok(live.every((n) => n === live[0]), `live tensors grow over steps: ${live}`);
  return losses;
}

/** Asserts finite losses, each below the one before. */
export function assertDecreasing(losses: number[]): void {
  assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
  for (let i = 1; i < losses.length; i++) assert.ok(losses[i]! < losses[i - 1]!, `loss did not decrease: ${losses.map((l) => l.toFixed(5))}`);
}
