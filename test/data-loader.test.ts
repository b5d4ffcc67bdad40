// The data loader: both iterators (in-thread and worker prefetch) yield the same batches as a
// non-prefetching reference built from the plan; determinism, flips, early exit, memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DataLoader, Rng, TaskSuite, makeBatch, type Batch, type TaskData } from '../src/data/index.js';
import { memory } from '../src/tensor/index.js';
import { UserError } from '../src/tensor/errors.js';

function task(name: string, n: number, seed: number, numClasses: number): TaskData {
  const r = Rng.from(seed);
  const mk = () => ({
    n,
    channels: 3 as const,
    height: 6,
    width: 6,
    images: Uint8Array.from({ length: n * 108 }, () => r.int(256)),
    labels: Int32Array.from({ length: n }, () => r.int(numClasses)),
  });
  return { name, classNames: Array.from({ length: numClasses }, String), task: 'multi-class', sourceChannels: 3, splits: { train: mk(), val: mk(), test: mk() } };
}

const suite = new TaskSuite([task('a', 23, 1, 2), task('b', 41, 2, 5), task('c', 9, 3, 3)]);

interface Snap {
  images: number[];
  local: number[];
  global: number[];
  taskIds: number[];
  indices: number[];
  flipped: number[];
}
function snap(b: Batch): Snap {
  const s = {
    images: Array.from(b.images.toArray() as Float32Array),
    local: b.local.toNumbers(),
    global: b.global.toNumbers(),
    taskIds: b.taskIds.toNumbers(),
    indices: Array.from(b.info.indices),
    flipped: Array.from(b.info.flipped),
  };
  b.dispose();
  return s;
}

test('loader: epoch() and epochAsync() equal the non-prefetching reference', async () => {
  const live = memory().liveTensors;
  const opts = { split: 'train' as const, batchSize: 10, seed: 5, flip: true, size: 9, mean: [0.4, 0.5, 0.6] as const, std: [0.2, 0.3, 0.4] as const };
  const loader = new DataLoader(suite, opts);
  try {
    assert.equal(loader.numBatches, 8);
    for (const epoch of [0, 1]) {
      const plan = loader.plan(epoch);
      const reference = plan.map((p) => snap(makeBatch(loader.split, p.indices, p.flips, opts)));
      const sync = Array.from(loader.epoch(epoch), snap);
      const asyncBatches: Snap[] = [];
      for await (const b of loader.epochAsync(epoch)) asyncBatches.push(snap(b));
      assert.equal(reference.length, 8);
      assert.deepEqual(sync, reference, `epoch ${epoch}: sync`);
      assert.deepEqual(asyncBatches, reference, `epoch ${epoch}: async`);
      // coverage and flip statistics of the plan
      const all = plan.flatMap((p) => Array.from(p.indices)).sort((x, y) => x - y);
      assert.deepEqual(all, Array.from({ length: 73 }, (_, i) => i));
      const flips = plan.reduce((s, p) => s + p.flips.reduce((a, f) => a + f, 0), 0);
      assert.ok(flips > 15 && flips < 58, `flipped ${flips} of 73`);
      assert.equal(reference[7]!.indices.length, 3, 'partial last batch');
      assert.deepEqual(reference[0]!.global, reference[0]!.indices.map((i) => loader.split.global[i]!));
    }
    assert.notDeepEqual(loader.plan(0), loader.plan(1));
    assert.deepEqual(new DataLoader(suite, opts).plan(1), loader.plan(1), 'plan depends only on (seed, epoch)');
    assert.ok(new DataLoader(suite, { ...opts, flip: false }).plan(0).every((p) => p.flips.every((f) => f === 0)));
  } finally {
    await loader.close();
  }
  assert.equal(memory().liveTensors, live, 'no tensors left alive');
});

test('loader: evaluation order, balanced option, early exit and restart', async () => {
  const live = memory().liveTensors;
  const evalLoader = new DataLoader(suite, { split: 'test', batchSize: 32, shuffle: false });
  const order: number[] = [];
  for (const b of evalLoader.epoch(0)) {
    order.push(...b.info.indices);
    assert.deepEqual(b.images.shape, [b.size, 3, 6, 6]);
    b.dispose();
  }
  assert.deepEqual(order, Array.from({ length: 73 }, (_, i) => i));

  const bal = new DataLoader(suite, { split: 'train', batchSize: 12, seed: 1, balanced: true, dropLast: true });
  assert.equal(bal.numBatches, 6);
  const perTask = [0, 0, 0];
  for await (const b of bal.epochAsync(0)) {
    for (const t of b.info.taskIds) perTask[t]!++;
    b.dispose();
  }
  assert.deepEqual(perTask, [24, 24, 24]);

  // leave an async epoch after one batch, then run a full one on the same loader
  let seen = 0;
  for await (const b of bal.epochAsync(1)) {
    b.dispose();
    if (++seen === 1) break;
  }
  const again: number[][] = [];
  for await (const b of bal.epochAsync(1)) {
    again.push(Array.from(b.info.indices));
    b.dispose();
  }
  assert.deepEqual(again, bal.plan(1).map((p) => Array.from(p.indices)));
  await bal.close();
  // after close, a new epoch starts a new worker
  let n = 0;
  for await (const b of bal.epochAsync(2)) {
    n += b.size;
    b.dispose();
  }
  assert.equal(n, 72);
  await bal.close();
  assert.equal(memory().liveTensors, live);
  assert.throws(() => new DataLoader(suite, { split: 'train', batchSize: 4, prefetch: 0 }), UserError);
});

test('loader: bundled suite, one epoch of the smallest task through the worker', async () => {
  const bundled = TaskSuite.fromMedMnist(['breastmnist']);
  const loader = new DataLoader(bundled, { split: 'train', batchSize: 128, seed: 0, flip: true, size: 32 });
  let n = 0;
  for await (const b of loader.epochAsync(0)) {
    assert.deepEqual(b.images.shape, [b.size, 3, 32, 32]);
    n += b.size;
    b.dispose();
  }
  assert.equal(n, 546);
  await loader.close();
});

test('loader: a standalone script that leaves an async epoch early and closes exits cleanly', () => {
  // Outside the test runner nothing else keeps the event loop alive: the worker must hold it while
  // replies are due and during close(), and release it afterwards (or the process would hang).
  const index = new URL('../src/data/index.js', import.meta.url).href;
  const script = `
    import * as D from ${JSON.stringify(index)};
    const suite = D.TaskSuite.fromMedMnist(['breastmnist']);
    const L = new D.DataLoader(suite, { split: 'train', batchSize: 16, seed: 1, flip: true, prefetch: 3 });
    const busy = (ms) => { const e = performance.now() + ms; while (performance.now() < e); };
    let k = 0;
    for await (const b of L.epochAsync(0)) { b.dispose(); busy(20); if (++k === 4) break; }
    await L.close();
    let n = 0;
    for await (const b of L.epochAsync(1)) { n += b.size; b.dispose(); }
    console.log('done', k, n);
  `;
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-loader-'));
  try {
    const file = path.join(dir, 'early-exit.mjs');
    writeFileSync(file, script);
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 60000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'done 4 546');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
