// The bundled 64x64 tasks (data/tasks64: files against their INFO JSON and PROVENANCE.md), the
// named suite med6, and suites mixing stored sizes (28 and 64) and grey with RGB: a batch is
// resized per task straight to the input size, checked against a bilinear resize written here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DataLoader, MED6, TASKS64, TaskSuite, classCounts, expandTaskList, loadMedMnist, loadTasks, makeTaskBatch, sortByTaskStable, tasks64Dir, type Split, type TaskData } from '../src/data/index.js';
import { UserError } from '../src/tensor/errors.js';

test('data/tasks64: each npz has the MD5 of its INFO JSON, loads by name with its class names, task type, channels and split sizes', () => {
  const provenance = readFileSync(path.join(tasks64Dir(), 'PROVENANCE.md'), 'utf8');
  const expected: Record<string, [number, string, 1 | 3]> = { bloodpbc: [8, 'multi-class', 3], kneeoa: [5, 'ordinal-regression', 1], braintumor: [4, 'multi-class', 1] };
  for (const name of TASKS64) {
    const file = path.join(tasks64Dir(), `${name}.npz`);
    const info = JSON.parse(readFileSync(path.join(tasks64Dir(), `${name}.json`), 'utf8')) as { MD5: string; label: Record<string, string>; n_samples: Record<Split, number>; license: string };
    assert.equal(createHash('md5').update(readFileSync(file)).digest('hex'), info.MD5, name);
    assert.match(provenance, new RegExp('`' + name + '`.*' + info.license.replace(/[.]/g, '\\.')), `PROVENANCE.md lists ${name} under ${info.license}`);
    const d = loadMedMnist(name);
    const [k, task, channels] = expected[name]!;
    assert.equal(d.file, file);
    assert.deepEqual(d.classNames, Object.values(info.label));
    assert.equal(d.classNames.length, k);
    assert.equal(d.task, task);
    assert.equal(d.sourceChannels, channels);
    for (const s of ['train', 'val', 'test'] as const) {
      assert.equal(d.splits[s].n, info.n_samples[s]);
      assert.deepEqual([d.splits[s].height, d.splits[s].width], [64, 64]);
      assert.ok(classCounts(d.splits[s], k).every((c) => c > 0), `${name} ${s}: every class present`);
    }
  }
});

test('--tasks med6 / all expand to the six bundled tasks; a task twice is refused', () => {
  assert.deepEqual(expandTaskList(['med6']), ['breastmnist', 'pneumoniamnist', 'retinamnist', 'bloodpbc', 'kneeoa', 'braintumor']);
  assert.deepEqual(expandTaskList(['ALL']), [...MED6]);
  assert.deepEqual(expandTaskList(['x.npz', 'med6']), ['x.npz', ...MED6]);
  assert.throws(() => expandTaskList(['med6', 'kneeoa']), (e: unknown) => e instanceof UserError && /'kneeoa' appears twice \(med6 = breastmnist,/.test(e.message));
});

/** Bilinear resize of one (3, h, w) image to (3, s, s), align_corners=False, no antialias (torch's rule), written out. */
function bilinear(img: Float64Array, h: number, w: number, s: number): Float64Array {
  const out = new Float64Array(3 * s * s);
  const src = (o: number, n: number, i: number): [number, number, number] => {
    const x = Math.max(((i + 0.5) * n) / s - 0.5, 0);
    const i0 = Math.min(Math.floor(x), n - 1);
    return [i0, Math.min(i0 + 1, n - 1), x - i0];
  };
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < s; y++)
      for (let x = 0; x < s; x++) {
        const [y0, y1, fy] = src(0, h, y);
        const [x0, x1, fx] = src(0, w, x);
        const at = (yy: number, xx: number) => img[(c * h + yy) * w + xx]!;
        out[(c * s + y) * s + x] = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1));
      }
  return out;
}

/** A task at side `hw`: grey (the three planes equal) or RGB; pixel values from (sample, c, y, x). */
function task(name: string, hw: number, grey: boolean, n = 4): TaskData {
  const mk = (tag: number) => ({
    n, channels: 3 as const, height: hw, width: hw,
    images: Uint8Array.from({ length: n * 3 * hw * hw }, (_, i) => {
      const [p, c] = [i % (hw * hw), Math.floor(i / (hw * hw)) % 3];
      return (p * 37 + Math.floor(i / (3 * hw * hw)) * 11 + (grey ? 0 : c * 70) + tag) % 256;
    }),
    labels: Int32Array.from({ length: n }, (_, i) => i % 2),
  });
  return { name, classNames: ['a', 'b'], task: 'binary-class', sourceChannels: grey ? 1 : 3, splits: { train: mk(0), val: mk(1), test: mk(2) } };
}

test('a suite of tasks stored at 5x5 (grey) and 8x8 (RGB): each row is resized from its own size to the input, flips included', () => {
  const suite = new TaskSuite([task('small', 5, true), task('large', 8, false)]);
  const split = suite.split('train');
  const S = 6;
  const mean = [0.4, 0.5, 0.6] as const;
  const std = [0.2, 0.25, 0.3] as const;
  // rows of both tasks interleaved, some flipped; the batch sorts them by task
  const { indices, flips } = sortByTaskStable(split, Int32Array.from([4, 0, 7, 2, 5]), Uint8Array.from([1, 0, 0, 1, 1]));
  const b = makeTaskBatch(split, indices, flips, { size: S, mean, std });
  try {
    assert.deepEqual(b.images.shape, [5, 3, S, S]);
    const got = b.images.toArray() as Float32Array;
    for (let r = 0; r < 5; r++) {
      const t = split.taskIds[indices[r]!]!;
      const hw = [5, 8][t]!;
      const src = suite.tasks[t]!.data.splits.train.images;
      const row = split.rowOf(indices[r]!);
      const img = Float64Array.from({ length: 3 * hw * hw }, (_, i) => {
        const [c, y, x] = [Math.floor(i / (hw * hw)), Math.floor(i / hw) % hw, i % hw];
        return src[((row * 3 + c) * hw + y) * hw + (flips[r] ? hw - 1 - x : x)]! / 255;
      });
      const want = bilinear(img, hw, hw, S);
      let worst = 0;
      for (let i = 0; i < want.length; i++) {
        const c = Math.floor(i / (S * S));
        worst = Math.max(worst, Math.abs(got[r * 3 * S * S + i]! - (want[i]! - mean[c]!) / std[c]!));
      }
      assert.ok(worst < 1e-5, `row ${r} (task ${t}, flip ${flips[r]}): max difference ${worst}`);
      const plane = (c: number) => Array.from(got.subarray(r * 3 * S * S + c * S * S, r * 3 * S * S + (c + 1) * S * S), (v) => v * std[c]! + mean[c]!);
      const equalPlanes = plane(0).every((v, i) => Math.abs(v - plane(1)[i]!) < 1e-5);
      assert.equal(equalPlanes, t === 0, `task ${t}: grey rows have equal channels, RGB rows do not`);
    }
  } finally {
    b.dispose();
  }
  assert.throws(() => makeTaskBatch(split, indices, flips, {}), (e: unknown) => e instanceof UserError && /tasks stored at different sizes \(5x5, 8x8\) need an input size/.test(e.message));
});

test('breastmnist (28x28) beside bloodpbc (64x64) at --input 28: the 28x28 rows are not resized twice, the 64x64 rows are resized; loader and worker agree', async () => {
  const suite = new TaskSuite(loadTasks(['breastmnist', 'bloodpbc']));
  const split = suite.split('val');
  assert.deepEqual([split.heights, split.widths], [[28, 64], [28, 64]]);
  const loader = new DataLoader(suite, { split: 'val', batchSize: 64, seed: 3, flip: true, size: 28, mean: [0, 0, 0], std: [1, 1, 1] });
  const sync = [...loader.epoch(0)].map((b) => ({ x: b.images.toArray() as Float32Array, idx: b.info.indices, fl: b.info.flipped, dispose: () => b.dispose() }));
  const worker: Float32Array[] = [];
  for await (const b of loader.epochAsync(0)) {
    worker.push(b.images.toArray() as Float32Array);
    b.dispose();
  }
  await loader.close();
  assert.equal(sync.length, worker.length);
  let checked = 0;
  sync.forEach((b, k) => {
    assert.deepEqual(b.x, worker[k], `batch ${k}: the prefetch worker gathers the same bytes`);
    for (let r = 0; r < b.idx.length; r++) {
      if (split.taskIds[b.idx[r]!] !== 0) continue;
      const src = suite.tasks[0]!.data.splits.val.images.subarray(split.rowOf(b.idx[r]!) * 3 * 784, (split.rowOf(b.idx[r]!) + 1) * 3 * 784);
      for (let i = 0; i < 3 * 784; i += 97) {
        const x = i % 28;
        const want = src[i - x + (b.fl[r] ? 27 - x : x)]! / 255;
        assert.ok(Math.abs(b.x[r * 3 * 784 + i]! - want) < 1e-6, `breast row ${r} pixel ${i}`);
      }
      checked++;
    }
    b.dispose();
  });
  assert.equal(checked, 78, 'every breastmnist val image was checked');
});
