// MedMNIST: the bundled files against PROVENANCE.md (hashes, split sizes, class counts) and the
// official INFO; CHW / 3-channel conversion; user .npz files by path and their errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { zipSync } from 'fflate';
import {
  BUNDLED_MEDMNIST,
  MEDMNIST_INFO,
  SPLITS,
  classCounts,
  loadMedMnist,
  loadNpz,
  medmnistDir,
  packageRoot,
} from '../src/data/index.js';
import { UserError } from '../src/tensor/errors.js';

const provenance = readFileSync(path.join(medmnistDir(), 'PROVENANCE.md'), 'utf8');

// Class counts per split, as listed in PROVENANCE.md (computed there with numpy).
const COUNTS: Record<string, Record<string, number[]>> = {
  breastmnist: { train: [147, 399], val: [21, 57], test: [42, 114] },
  pneumoniamnist: { train: [1214, 3494], val: [135, 389], test: [234, 390] },
  retinamnist: { train: [486, 128, 206, 194, 66], val: [54, 12, 28, 20, 6], test: [174, 46, 92, 68, 20] },
};

test('package root and bundled folder', () => {
  const pkg = JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { name: string };
  assert.equal(pkg.name, 'lorkd');
  assert.deepEqual([...BUNDLED_MEDMNIST].sort(), ['breastmnist', 'pneumoniamnist', 'retinamnist']);
});

test('bundled files: MD5 equals the official INFO MD5, and every array hash matches PROVENANCE.md', () => {
  for (const name of BUNDLED_MEDMNIST) {
    const file = path.join(medmnistDir(), `${name}.npz`);
    assert.equal(createHash('md5').update(readFileSync(file)).digest('hex'), MEDMNIST_INFO[name]!.md5, name);
    const z = loadNpz(file);
    for (const s of SPLITS) {
      for (const kind of ['images', 'labels']) {
        const key = `${s}_${kind}`;
        const m = new RegExp(`^${name}\\s+${key}\\s+([0-9a-f]{64})$`, 'm').exec(provenance);
        assert.ok(m, `PROVENANCE.md lists ${name} ${key}`);
        const a = z.get(key);
        assert.equal(a.dtype, 'uint8');
        const bytes = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
        assert.equal(createHash('sha256').update(bytes).digest('hex'), m[1], `${name} ${key}`);
      }
    }
  }
});

test('bundled subsets load with official sizes, class names and label distributions', () => {
  for (const name of BUNDLED_MEDMNIST) {
    const d = loadMedMnist(name);
    const info = MEDMNIST_INFO[name]!;
    assert.equal(d.name, name);
    assert.deepEqual(d.classNames, info.labels);
    assert.equal(d.task, info.task);
    assert.equal(d.sourceChannels, info.nChannels);
    assert.equal(d.info, info);
    for (const s of SPLITS) {
      const sp = d.splits[s];
      assert.equal(sp.n, info.nSamples[s], `${name} ${s}`);
      assert.equal(sp.channels, 3);
      assert.deepEqual([sp.height, sp.width], [28, 28]);
      assert.equal(sp.images.length, sp.n * 3 * 28 * 28);
      assert.equal(sp.labels.length, sp.n);
      assert.deepEqual(classCounts(sp, d.classNames.length), COUNTS[name]![s], `${name} ${s} class counts`);
    }
  }
  assert.deepEqual(MEDMNIST_INFO.breastmnist!.labels, ['malignant', 'normal, benign']);
  assert.deepEqual(MEDMNIST_INFO.pneumoniamnist!.labels, ['normal', 'pneumonia']);
  assert.deepEqual(MEDMNIST_INFO.retinamnist!.labels, ['0', '1', '2', '3', '4']);
});

test('images become CHW with 3 channels: grey repeated, RGB transposed from HWC', () => {
  const hw = 28 * 28;
  const breast = loadMedMnist('BreastMNIST').splits.val;
  const rawGrey = loadNpz(path.join(medmnistDir(), 'breastmnist.npz')).get('val_images').data as Uint8Array;
  for (const n of [0, 41, 77]) {
    for (let c = 0; c < 3; c++) {
      const plane = breast.images.subarray((n * 3 + c) * hw, (n * 3 + c + 1) * hw);
      assert.deepEqual(plane, rawGrey.subarray(n * hw, (n + 1) * hw));
    }
  }
  const retina = loadMedMnist('retina').splits.test;
  const rawRgb = loadNpz(path.join(medmnistDir(), 'retinamnist.npz')).get('test_images');
  assert.deepEqual(rawRgb.shape, [400, 28, 28, 3]);
  const rgb = rawRgb.data as Uint8Array;
  let differ = 0;
  for (const [n, y, x] of [[0, 0, 0], [5, 13, 20], [399, 27, 27], [123, 7, 3]] as const) {
    for (let c = 0; c < 3; c++) {
      const want = rgb[((n * 28 + y) * 28 + x) * 3 + c];
      assert.equal(retina.images[n * 3 * hw + c * hw + y * 28 + x], want);
    }
    if (rgb[((n * 28 + y) * 28 + x) * 3] !== rgb[((n * 28 + y) * 28 + x) * 3 + 1]) differ++;
  }
  assert.ok(differ > 0, 'retina pixels are colour (the check above would catch a channel mix-up)');
});

test('unknown names are UserErrors listing the bundled subsets', () => {
  assert.throws(() => loadMedMnist('dermamnist'), (e: unknown) => e instanceof UserError && /unknown MedMNIST subset 'dermamnist' \(bundled: breastmnist, pneumoniamnist, retinamnist/.test(e.message));
  assert.throws(() => loadMedMnist('breast', { dataDir: '/nonexistent' }), (e: unknown) => e instanceof UserError && /breastmnist\.npz: MedMNIST file for 'breastmnist' not found/.test(e.message));
});

// ---- user files by path

function npy(descr: string, shape: number[], data: ArrayBufferView): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let h = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  h += ' '.repeat(64 - ((10 + h.length + 1) % 64)) + '\n';
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(10 + h.length + bytes.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length & 255, h.length >> 8]);
  out.set(Uint8Array.from(h, (c) => c.charCodeAt(0)), 10);
  out.set(bytes, 10 + h.length);
  return out;
}

interface Fake {
  images?: (n: number) => Uint8Array;
  imageShape?: (n: number) => number[];
  imageDescr?: string;
  labels?: (n: number) => ArrayBufferView;
  labelShape?: (n: number) => number[];
  labelDescr?: string;
  drop?: string;
}
const SIZES = { train: 6, val: 2, test: 3 };
/** A MedMNIST-layout npz: RGB 4x5 images whose pixel value encodes (sample, y, x, c). */
function writeFake(file: string, f: Fake = {}): void {
  const members: Record<string, Uint8Array> = {};
  for (const s of SPLITS) {
    const n = SIZES[s];
    const img = f.images?.(n) ?? Uint8Array.from({ length: n * 4 * 5 * 3 }, (_, i) => (i * 7 + n) % 256);
    members[`${s}_images.npy`] = npy(f.imageDescr ?? '|u1', f.imageShape?.(n) ?? [n, 4, 5, 3], img);
    const lab = f.labels?.(n) ?? BigInt64Array.from({ length: n }, (_, i) => BigInt((i * 2) % 7));
    members[`${s}_labels.npy`] = npy(f.labelDescr ?? '<i8', f.labelShape?.(n) ?? [n], lab);
  }
  if (f.drop) delete members[f.drop];
  writeFileSync(file, zipSync(members));
}

test('a user MedMNIST-format npz by path: class count inferred or given, HWC->CHW', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-mm-'));
  try {
    const file = path.join(dir, 'mytask.npz');
    writeFake(file);
    const d = loadMedMnist(file);
    assert.equal(d.name, 'mytask');
    assert.equal(d.info, undefined);
    // labels (i*2)%7 over the train split (6 samples): 0,2,4,6,1,3 -> max 6 -> 7 classes
    assert.equal(d.classNames.length, 7);
    assert.deepEqual(d.classNames, ['0', '1', '2', '3', '4', '5', '6']);
    assert.equal(d.task, 'multi-class');
    assert.deepEqual(Array.from(d.splits.train.labels), [0, 2, 4, 6, 1, 3]);
    const tr = d.splits.train;
    assert.deepEqual([tr.n, tr.height, tr.width], [6, 4, 5]);
    // CHW value at (n, c, y, x) equals the HWC source value at (n, y, x, c)
    for (const [n, c, y, x] of [[0, 0, 0, 0], [5, 2, 3, 4], [2, 1, 1, 3]] as const) {
      const src = (((n * 4 + y) * 5 + x) * 3 + c) * 7 + 6;
      assert.equal(tr.images[((n * 3 + c) * 4 + y) * 5 + x], src % 256);
    }
    const named = loadMedMnist(file, { numClasses: 9, name: 'custom' });
    assert.equal(named.name, 'custom');
    assert.equal(named.classNames.length, 9);
    const cn = loadMedMnist(file, { classNames: ['a', 'b', 'c', 'd', 'e', 'f', 'g'] });
    assert.equal(cn.classNames[6], 'g');

    // a file named like an official subset takes its INFO (here: retinamnist at another size)
    const retinaLike = path.join(dir, 'retinamnist_64.npz');
    writeFake(retinaLike, { labels: (n) => Uint8Array.from({ length: n }, (_, i) => i % 5), labelDescr: '|u1', labelShape: (n) => [n, 1] });
    const r = loadMedMnist(retinaLike);
    assert.equal(r.name, 'retinamnist');
    assert.deepEqual(r.classNames, ['0', '1', '2', '3', '4']);
    assert.equal(r.task, 'ordinal-regression');

    // grey user file with (N,H,W,1) images: planes repeated
    const grey = path.join(dir, 'grey.npz');
    writeFake(grey, { images: (n) => Uint8Array.from({ length: n * 20 }, (_, i) => i), imageShape: (n) => [n, 4, 5, 1] });
    const g = loadMedMnist(grey);
    assert.equal(g.sourceChannels, 1);
    assert.deepEqual(Array.from(g.splits.val.images.subarray(20, 40)), Array.from({ length: 20 }, (_, i) => i));
    assert.deepEqual(Array.from(g.splits.val.images.subarray(60, 80)), Array.from({ length: 20 }, (_, i) => 20 + i));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('user npz errors: one line, naming the file and the problem', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-mm-'));
  const cases: [Fake | null, MedOpts, RegExp][] = [
    [{}, { numClasses: 3 }, /label 6 is out of range for 3 classes/],
    [{}, { numClasses: 3, classNames: ['a', 'b'] }, /2 class names given for 3 classes/],
    [{ drop: 'val_labels.npy' }, {}, /no array 'val_labels' in the archive/],
    [{ labelShape: (n) => [n, 1], labels: (n) => new BigInt64Array(n) }, {}, null as unknown as RegExp],
    [{ labels: (n) => new BigInt64Array(n * 14), labelShape: (n) => [n, 14] }, {}, /shape \[6, 14\]: multi-label tasks are not supported/],
    [{ labels: (n) => new Float32Array(n), labelDescr: '<f4' }, {}, /train_labels must be integers, got float32/],
    [{ labels: (n) => BigInt64Array.from({ length: n }, () => -1n) }, {}, /train_labels\[0\] = -1 is not a class index/],
    [{ labels: () => new BigInt64Array(4), labelShape: () => [4] }, {}, /train_labels has shape \[4\], expected \[6\] or \[6, 1\]/],
    [{ images: (n) => new Uint8Array(n * 4 * 5 * 2), imageShape: (n) => [n, 4, 5, 2] }, {}, /train_images has shape \[6, 4, 5, 2\], expected \(N, H, W\) or \(N, H, W, 3\)/],
    [{ images: (n) => new Uint8Array(n * 80 * 4), imageShape: (n) => [n, 4, 5, 4], imageDescr: '<f4' }, {}, /train_images must be uint8, got float32/],
  ];
  type MedOpts = Parameters<typeof loadMedMnist>[1] & object;
  try {
    cases.forEach(([fake, opts, re], i) => {
      if (!re) return; // (N,1) int64 labels are valid: covered by the load below
      const file = path.join(dir, `case${i}.npz`);
      writeFake(file, fake ?? {});
      assert.throws(
        () => loadMedMnist(file, opts),
        (e: unknown) => e instanceof UserError && e.message.startsWith(file + ': ') && re.test(e.message) && !e.message.includes('\n'),
        `case ${i}: ${re}`,
      );
    });
    const ok = path.join(dir, 'ok.npz');
    writeFake(ok, cases[3]![0]!);
    assert.equal(loadMedMnist(ok).classNames.length, 1);
    writeFileSync(path.join(dir, 'trunc.npz'), readFileSync(ok).subarray(0, 200));
    assert.throws(() => loadMedMnist(path.join(dir, 'trunc.npz')), (e: unknown) => e instanceof UserError && /trunc\.npz: not a valid npz/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- an INFO JSON beside the npz (`<name>.json`, MedMNIST's INFO record)

test('an INFO JSON beside a user npz gives its class names and task type; without one, 0..K-1', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-mm-'));
  try {
    const file = path.join(dir, 'cells.npz');
    writeFake(file, { labels: (n) => Uint8Array.from({ length: n }, (_, i) => i % 3), labelDescr: '|u1', labelShape: (n) => [n, 1] });
    const plain = loadMedMnist(file);
    assert.deepEqual(plain.classNames, ['0', '1', '2']);
    assert.equal(plain.task, 'multi-class');
    const info = { task: 'ordinal-regression', label: { '0': 'mild', '1': 'moderate', '2': 'severe', '3': 'proliferative' }, n_channels: 3, n_samples: SIZES, license: 'CC0 1.0' };
    writeFileSync(path.join(dir, 'cells.json'), JSON.stringify(info));
    const d = loadMedMnist(file);
    // 4 names although the labels only reach 2: the JSON says how many classes the task has
    assert.deepEqual(d.classNames, ['mild', 'moderate', 'severe', 'proliferative']);
    assert.equal(d.task, 'ordinal-regression');
    assert.equal(d.infoJson?.extra.license, 'CC0 1.0');
    assert.deepEqual(loadMedMnist(file, { classNames: ['x', 'y', 'z'] }).classNames, ['x', 'y', 'z'], 'explicit names win');

    const bad: [Record<string, unknown>, RegExp][] = [
      [{ ...info, n_channels: 1 }, /n_channels is 1 but the \.npz images have 3 channels/],
      [{ ...info, n_channels: 2 }, /n_channels must be 1 or 3, got 2/],
      [{ ...info, task: 'multi-label, binary-class' }, /task "multi-label, binary-class" is not supported/],
      [{ ...info, task: 'regression' }, /task must be one of binary-class, multi-class, ordinal-regression, got "regression"/],
      [{ ...info, label: { '0': 'a', '2': 'c' } }, /label must have the keys "0".."1", "1" is missing/],
      [{ ...info, label: ['a', 'b'] }, /label must be an object of class index -> name/],
      [{ ...info, label: { '0': 'a', '1': 'b' } }, /label 2 is out of range for 2 classes \(.*cells\.json names 2\)/],
      [{ ...info, n_samples: { ...SIZES, test: 4 } }, /n_samples\.test is 4 but the \.npz has 3 test images/],
    ];
    for (const [v, re] of bad) {
      writeFileSync(path.join(dir, 'cells.json'), JSON.stringify(v));
      assert.throws(() => loadMedMnist(file), (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n'), String(re));
    }
    writeFileSync(path.join(dir, 'cells.json'), '{"task": ');
    assert.throws(() => loadMedMnist(file), (e: unknown) => e instanceof UserError && /cells\.json: not valid JSON/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
