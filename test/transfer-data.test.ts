// Downstream data for transfer and image folders as tasks: seeded stratified splits of a flat
// folder, k-shot subsets, mixed-size task lists (image folders beside MedMNIST npz), the 95%
// interval and the --transfer SPEC parser.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';
import { UserError } from '../src/tensor/index.js';
import { loadTask, loadTasks } from '../src/data/medmnist.js';
import { fewShot, splitStratified } from '../src/data/image-folder.js';
import type { ImageSplit } from '../src/data/dataset.js';
import { interval, parseTransferSpec, TRANSFER_DEFAULTS } from '../src/experiments/transfer.js';
import { loadSuite } from '../src/experiments/data-options.js';
import { writeTaskNpz } from './helpers/pipeline.js';
import { lcg } from './helpers/random.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-transfer-data-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A grey PNG (value v everywhere) or an RGB JPEG of the given size. */
function writeImage(file: string, size: number, v: number, rgb: boolean): void {
  if (rgb) {
    const data = Buffer.alloc(size * size * 4);
    for (let p = 0; p < size * size; p++) data.set([v, 255 - v, 40, 255], 4 * p);
    writeFileSync(file, jpeg.encode({ data, width: size, height: size }, 95).data);
  } else {
    const png = new PNG({ width: size, height: size, colorType: 0 });
    for (let p = 0; p < size * size; p++) png.data.set([v, v, v, 255], 4 * p);
    writeFileSync(file, PNG.sync.write(png, { colorType: 0 }));
  }
}

/** A flat ImageFolder: `classes` folders of `per` images, file value encodes (class, index). */
function flatFolder(name: string, classes: string[], per: number, size = 12): string {
  const root = path.join(dir, name);
  classes.forEach((c, k) => {
    mkdirSync(path.join(root, c), { recursive: true });
    for (let i = 0; i < per; i++) writeImage(path.join(root, c, `${String(i).padStart(3, '0')}.png`), size, k * 60 + i, false);
  });
  return root;
}

const values = (s: ImageSplit): number[] => Array.from({ length: s.n }, (_, i) => s.images[i * 3 * s.height * s.width]!);

test('a flat image folder is split per class, seeded, disjoint and complete', () => {
  const root = flatFolder('flat', ['a', 'b', 'c'], 20);
  const t = loadTask(root, { valSplit: 0.1, testSplit: 0.25, splitSeed: 7 });
  assert.equal(t.name, 'flat');
  assert.deepEqual(t.classNames, ['a', 'b', 'c']);
  assert.deepEqual([t.splits.train.n, t.splits.val.n, t.splits.test.n], [39, 6, 15]); // per class: 13 / 2 / 5
  for (const s of ['train', 'val', 'test'] as const) {
    const counts = [0, 0, 0];
    for (const l of t.splits[s].labels) counts[l]!++;
    assert.equal(new Set(counts).size, 1, `${s} is stratified: ${counts}`);
  }
  const all = [...values(t.splits.train), ...values(t.splits.val), ...values(t.splits.test)].sort((a, b) => a - b);
  const want = [0, 1, 2].flatMap((k) => Array.from({ length: 20 }, (_, i) => k * 60 + i)).sort((a, b) => a - b);
  assert.deepEqual(all, want, 'every image in exactly one split');
  // Labels still match the images (value / 60 is the class).
  for (const s of ['train', 'val', 'test'] as const) values(t.splits[s]).forEach((v, i) => assert.equal(Math.floor(v / 60), t.splits[s].labels[i]));
  const again = loadTask(root, { valSplit: 0.1, testSplit: 0.25, splitSeed: 7 });
  assert.deepEqual(values(again.splits.test), values(t.splits.test), 'same seed, same split');
  const other = loadTask(root, { valSplit: 0.1, testSplit: 0.25, splitSeed: 8 });
  assert.notDeepEqual(values(other.splits.test), values(t.splits.test), 'another seed, another split');
  assert.throws(() => splitStratified(t.splits.train, 3, 0.5, 0.5, 0), (e: unknown) => e instanceof UserError && /below 1/.test(e.message));
});

test('k shots: k training images per class, seeded; val and test untouched; too few is a one-line error', () => {
  const t = loadTask(flatFolder('shots', ['x', 'y'], 15), { valSplit: 0, testSplit: 0.2 });
  const k3 = fewShot(t, 3, 0);
  assert.equal(k3.splits.train.n, 6);
  assert.deepEqual([...k3.splits.train.labels].sort(), [0, 0, 0, 1, 1, 1]);
  const trainVals = new Set(values(t.splits.train));
  for (const v of values(k3.splits.train)) assert.ok(trainVals.has(v), 'shots come from the training split');
  assert.equal(k3.splits.test, t.splits.test);
  assert.deepEqual(values(fewShot(t, 3, 0).splits.train), values(k3.splits.train), 'deterministic');
  const seeds = new Set([0, 1, 2, 3].map((s) => values(fewShot(t, 3, s).splits.train).join()));
  assert.ok(seeds.size > 1, 'seeds draw different shots');
  assert.throws(() => fewShot(t, 13, 0), (e: unknown) => e instanceof UserError && /fewer than --shots 13/.test(e.message) && !e.message.includes('\n'));
});

test('--tasks mixes image folders (grey PNG, RGB JPEG, any size) with MedMNIST npz: each keeps its stored size in one suite', () => {
  const root = path.join(dir, 'mixed');
  for (const s of ['train', 'val', 'test']) {
    for (const [k, c] of ['cat', 'dog'].entries()) {
      mkdirSync(path.join(root, s, c), { recursive: true });
      writeImage(path.join(root, s, c, 'a.png'), 40, 50 + k * 100, false);
      writeImage(path.join(root, s, c, 'b.jpg'), 40, 30 + k * 100, true);
    }
  }
  const npz = path.join(dir, 'tiny.npz');
  writeTaskNpz(npz, { classes: 3, sizes: { train: 6, val: 3, test: 3 }, seed: 1 });
  const [folder, med] = loadTasks([root, npz]);
  assert.equal(folder!.name, 'mixed');
  assert.equal(folder!.sourceChannels, 3, 'an RGB JPEG among grey PNGs makes the task RGB');
  assert.equal(med!.name, 'tiny');
  // Each task keeps its own stored size (batches are resized per task where they are made: data-tasks64.test.ts).
  for (const s of ['train', 'val', 'test'] as const) {
    assert.deepEqual([folder!.splits[s].height, folder!.splits[s].width], [40, 40]);
    assert.deepEqual([med!.splits[s].height, med!.splits[s].width], [28, 28]);
  }
  assert.deepEqual(med!.splits.train.images, loadTask(npz).splits.train.images, 'the npz images as stored');
  // A grey PNG stays grey after loading (R = G = B), at its own value.
  const s = folder!.splits.train;
  const hw = s.height * s.width;
  assert.deepEqual([s.images[0], s.images[hw], s.images[2 * hw]], [50, 50, 50]);
  // The training commands' suite takes the same list (foundation/decompose/compare --tasks).
  const suite = loadSuite({ tasks: [root, npz] });
  assert.deepEqual(suite.tasks.map((t) => [t.name, t.numClasses]), [['mixed', 2], ['tiny', 3]]);
  assert.deepEqual(suite.split('train').heights, [40, 28]);
  assert.equal(suite.split('train').n, 4 + 6);
  assert.throws(() => loadTask(path.join(dir, 'nope')), (e: unknown) => e instanceof UserError);
});

test('95% interval: mean +- t(0.975, n-1) s / sqrt(n)', () => {
  const v = [0.8, 0.9, 0.85];
  const r = interval(v);
  const mean = 0.85;
  const s = Math.sqrt(((0.05 ** 2) * 2) / 2);
  const h = 4.303 * (s / Math.sqrt(3));
  assert.ok(Math.abs(r.mean - mean) < 1e-12);
  assert.ok(Math.abs(r.ci95![0] - (mean - h)) < 1e-12 && Math.abs(r.ci95![1] - (mean + h)) < 1e-12);
  assert.equal(interval([0.7]).ci95, null);
  const rr = lcg(3);
  const many = Array.from({ length: 50 }, () => rr());
  const m = interval(many);
  assert.ok(m.ci95![0] < m.mean && m.mean < m.ci95![1]);
});

test('--transfer SPEC: DATA[:key=value]...', () => {
  const s = parseTransferSpec('data/mednist:shots=5:epochs=30:lr=1e-4', [0, 1, 2]);
  assert.equal(s.data, 'data/mednist');
  assert.equal(s.shots, 5);
  assert.equal(s.epochs, 30);
  assert.equal(s.lr, 1e-4);
  assert.deepEqual(s.seeds, [0, 1, 2]);
  assert.equal(s.batch, TRANSFER_DEFAULTS.batch);
  assert.equal(parseTransferSpec('x.npz').shots, null);
  assert.throws(() => parseTransferSpec('x:shots=0'), /positive integer/);
  assert.throws(() => parseTransferSpec('x:foo=1'), /unknown key "foo"/);
});
