// Batch transforms: resize of constant images, normalisation by hand, exact flips, label tensors,
// and bilinear resize + normalise against torch F.interpolate when /usr/bin/python3 has torch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Rng, TaskSuite, gatherImages, imagesToTensor, makeBatch, type TaskData } from '../src/data/index.js';
import { memory, tidy } from '../src/tensor/index.js';
import { UserError } from '../src/tensor/errors.js';

const MEAN = [0.1, 0.2, 0.3] as const;
const STD = [0.5, 0.25, 2] as const;

function randomBytes(n: number, seed: number): Uint8Array {
  const r = Rng.from(seed);
  return Uint8Array.from({ length: n }, () => r.int(256));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('resize of a constant image stays constant (up and down), normalised per channel', () => {
  const live = memory().liveTensors;
  for (const size of [64, 20, 28, 57]) {
    const bytes = new Uint8Array(2 * 3 * 28 * 28);
    // sample 0: 77 everywhere; sample 1: channel c is 10 + 100 c
    bytes.fill(77, 0, 3 * 784);
    for (let c = 0; c < 3; c++) bytes.fill(10 + 100 * c, (3 + c) * 784, (4 + c) * 784);
    const t = imagesToTensor(bytes, 2, 28, 28, { size, mean: MEAN, std: STD });
    assert.deepEqual(t.shape, [2, 3, size, size]);
    assert.equal(t.dtype, 'float32');
    const out = t.toArray() as Float32Array;
    t.dispose();
    const plane = size * size;
    for (let b = 0; b < 2; b++) {
      for (let c = 0; c < 3; c++) {
        const v = b === 0 ? 77 : 10 + 100 * c;
        const want = (v / 255 - MEAN[c]) / STD[c];
        const got = out.subarray((b * 3 + c) * plane, (b * 3 + c + 1) * plane);
        assert.ok(maxAbsDiff(got, new Float64Array(plane).fill(want)) < 1e-6, `size ${size} b ${b} c ${c}`);
      }
    }
  }
  assert.equal(memory().liveTensors, live, 'intermediates freed');
});

test('normalise: (x / 255 - mean) / std per channel, by hand', () => {
  const bytes = randomBytes(3 * 3 * 5 * 7, 1);
  const t = imagesToTensor(bytes, 3, 5, 7, { mean: MEAN, std: STD });
  assert.deepEqual(t.shape, [3, 3, 5, 7]);
  const out = t.toArray() as Float32Array;
  t.dispose();
  const want = Array.from(bytes, (v, i) => {
    const c = Math.floor(i / 35) % 3;
    return (v / 255 - MEAN[c]) / STD[c];
  });
  assert.ok(maxAbsDiff(out, want) < 1e-6);
  // default mean = std = 0.5 maps [0, 255] to [-1, 1]
  const ends = imagesToTensor(Uint8Array.from([0, 255, 0, 255, 0, 255]), 1, 1, 2);
  assert.deepEqual(Array.from(ends.toArray() as Float32Array), [-1, 1, -1, 1, -1, 1]);
  ends.dispose();
  assert.throws(() => imagesToTensor(bytes, 3, 5, 7, { std: [1, 0, 1] }), UserError);
  assert.throws(() => imagesToTensor(bytes, 3, 5, 7, { size: 0 }), UserError);
});

function task(name: string, n: number, hw: number, seed: number, numClasses: number): TaskData {
  const mk = (k: number) => ({
    n,
    channels: 3 as const,
    height: hw,
    width: hw,
    images: randomBytes(n * 3 * hw * hw, seed * 10 + k),
    labels: Int32Array.from({ length: n }, (_, i) => (i * 3 + seed) % numClasses),
  });
  return { name, classNames: Array.from({ length: numClasses }, String), task: 'multi-class', sourceChannels: 3, splits: { train: mk(0), val: mk(1), test: mk(2) } };
}

test('flip: gathered rows are exactly mirrored; flipped batch = flip([3]) of the plain batch', () => {
  const suite = new TaskSuite([task('a', 4, 6, 1, 3), task('b', 5, 6, 2, 4)]);
  const split = suite.split('train');
  const idx = Int32Array.from([7, 0, 3, 8, 4]);
  const flips = Uint8Array.from([1, 0, 1, 1, 0]);
  const plain = gatherImages(split, idx);
  const flipped = gatherImages(split, idx, flips);
  const per = 3 * 36;
  for (let b = 0; b < idx.length; b++) {
    for (let r = 0; r < 18; r++) {
      for (let x = 0; x < 6; x++) {
        const src = plain[b * per + r * 6 + (flips[b] ? 5 - x : x)];
        assert.equal(flipped[b * per + r * 6 + x], src);
      }
    }
  }
  // the plain gather is the source rows (task b's row 3 is suite index 7)
  assert.deepEqual(plain.subarray(0, per), split.sources[1]!.subarray(3 * per, 4 * per));

  const live = memory().liveTensors;
  for (const size of [6, 16]) {
    tidy(() => {
      const noFlip = makeBatch(split, idx, new Uint8Array(5), { size });
      const withFlip = makeBatch(split, idx, flips, { size });
      const ref = noFlip.images.flip([3]).toArray() as Float32Array;
      const got = withFlip.images.toArray() as Float32Array;
      const base = noFlip.images.toArray() as Float32Array;
      const plane = 3 * size * size;
      for (let b = 0; b < 5; b++) {
        const g = got.subarray(b * plane, (b + 1) * plane);
        const want = (flips[b] ? ref : base).subarray(b * plane, (b + 1) * plane);
        const d = maxAbsDiff(g, want);
        // no resize: exact; bilinear resize is mirror-symmetric up to float rounding
        if (size === 6) assert.equal(d, 0, `sample ${b}`);
        else assert.ok(d < 1e-6, `sample ${b}: ${d}`);
      }
      assert.deepEqual(Array.from(withFlip.info.flipped), Array.from(flips));
    });
  }
  assert.equal(memory().liveTensors, live, 'tidy frees the batches');
});

test('labels: int64 local, global and task-id tensors', () => {
  const suite = new TaskSuite([task('a', 4, 3, 1, 3), task('b', 5, 3, 2, 4)]);
  const split = suite.split('val');
  const idx = Int32Array.from([8, 1, 4, 0]);
  const live = memory().liveTensors;
  const b = makeBatch(split, idx, new Uint8Array(4));
  assert.equal(b.size, 4);
  for (const t of [b.local, b.global, b.taskIds]) {
    assert.equal(t.dtype, 'int64');
    assert.deepEqual(t.shape, [4]);
  }
  // labels are (i * 3 + seed) % numClasses; task b starts at suite index 4 with class offset 3
  const local = [(4 * 3 + 2) % 4, (1 * 3 + 1) % 3, (0 * 3 + 2) % 4, (0 * 3 + 1) % 3];
  assert.deepEqual(b.local.toNumbers(), local);
  assert.deepEqual(b.global.toNumbers(), [local[0]! + 3, local[1]!, local[2]! + 3, local[3]!]);
  assert.deepEqual(b.taskIds.toNumbers(), [1, 0, 1, 0]);
  assert.deepEqual(Array.from(b.info.taskIds), [1, 0, 1, 0]);
  assert.deepEqual(Array.from(b.info.global), b.global.toNumbers());
  b.dispose();
  b.dispose();
  assert.equal(memory().liveTensors, live);
});

const hasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

test('bilinear resize + normalise match torch F.interpolate(antialias=False)', { skip: hasTorch ? false : '/usr/bin/python3 with torch not available' }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-resize-'));
  try {
    const n = 3;
    const bytes = randomBytes(n * 3 * 28 * 28, 7);
    writeFileSync(path.join(dir, 'in.u8'), bytes);
    const sizes = [64, 20, 57, 224];
    const py = [
      'import sys, numpy as np, torch',
      'import torch.nn.functional as F',
      'd = sys.argv[1]',
      `x = torch.from_numpy(np.fromfile(d + '/in.u8', dtype=np.uint8).reshape(${n}, 3, 28, 28).copy()).float() / 255`,
      `mean = torch.tensor([${MEAN.join(', ')}]).view(1, 3, 1, 1); std = torch.tensor([${STD.join(', ')}]).view(1, 3, 1, 1)`,
      `for s in [${sizes.join(', ')}]:`,
      "    y = F.interpolate(x, size=(s, s), mode='bilinear', align_corners=False, antialias=False)",
      "    ((y - mean) / std).numpy().astype('<f4').tofile(d + '/out%d.f32' % s)",
    ].join('\n');
    const r = spawnSync('/usr/bin/python3', ['-c', py, dir], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    for (const size of sizes) {
      const raw = readFileSync(path.join(dir, `out${size}.f32`));
      const want = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
      const t = imagesToTensor(bytes, n, 28, 28, { size, mean: MEAN, std: STD });
      const got = t.toArray() as Float32Array;
      t.dispose();
      assert.equal(got.length, n * 3 * size * size);
      assert.ok(maxAbsDiff(got, want) < 1e-6, `size ${size}: max diff ${maxAbsDiff(got, want)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('batches are built from the bundled data', () => {
  const suite = TaskSuite.fromMedMnist(['breastmnist', 'retinamnist']);
  const split = suite.split('test');
  const idx = Int32Array.from([0, 155, 156, 555]);
  tidy(() => {
    const b = makeBatch(split, idx, new Uint8Array(4), { size: 32 });
    assert.deepEqual(b.images.shape, [4, 3, 32, 32]);
    const v = b.images.toArray() as Float32Array;
    assert.ok(v.every((x) => x >= -1 - 1e-6 && x <= 1 + 1e-6));
    assert.deepEqual(b.taskIds.toNumbers(), [0, 0, 1, 1]);
    assert.deepEqual(b.global.toNumbers(), [split.local[0]!, split.local[155]!, split.local[156]! + 2, split.local[555]! + 2]);
  });
});
