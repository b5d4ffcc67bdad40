// Image-folder tasks: an ImageFolder root as a task (seeded split of a flat folder), k-shot
// subsets of a training split, and resizing a whole task to a common image size.
import { existsSync, statSync } from 'node:fs';
import { UserError } from '../tensor/errors.js';
import { type ImageSplit, type Split, SPLITS, type TaskData } from './dataset.js';
import { loadImageFolder } from './images.js';
import { Rng } from './rng.js';

/** True when `p` names an existing directory (an ImageFolder root). */
export const isDirectory = (p: string): boolean => existsSync(p) && statSync(p).isDirectory();

export interface ImageTaskOptions {
  /** Task name (default: the folder's name). */
  name?: string;
  /** Common image size (default: the first image's; see loadImageFolder). */
  size?: number | readonly [number, number];
  /** Flat layout only: fractions of each class that go to val and test (defaults 0.1 and 0.2). */
  valSplit?: number;
  testSplit?: number;
  /** Seed of the flat layout's split (default 0). */
  splitSeed?: number;
}

/** The rows `rows` of a split, in that order (a packed split stays packed: only its labels and row map are selected). */
export function selectRows(s: ImageSplit, rows: ArrayLike<number>): ImageSplit {
  if (s.pack) {
    // Rows stay in the pack: the selection maps the new rows onto the pack's (composed with an earlier one).
    const { rows: prev, ...ref } = s.pack;
    const pick = Int32Array.from(rows, (r) => (prev ? prev[r]! : r));
    return { ...s, n: rows.length, images: new Uint8Array(0), labels: Int32Array.from(rows, (r) => s.labels[r]!), pack: { ...ref, rows: pick } };
  }
  const per = 3 * s.height * s.width;
  const images = new Uint8Array(rows.length * per);
  const labels = new Int32Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    images.set(s.images.subarray(r * per, (r + 1) * per), i * per);
    labels[i] = s.labels[r]!;
  }
  return { n: rows.length, channels: 3, height: s.height, width: s.width, images, labels };
}

/** Row indices of each class, in row order. */
function rowsByLabel(labels: ArrayLike<number>, numClasses: number): number[][] {
  const out = Array.from({ length: numClasses }, () => [] as number[]);
  for (let i = 0; i < labels.length; i++) out[labels[i]!]!.push(i);
  return out;
}

/** Row indices of each class of a split, in row order. */
const rowsByClass = (s: ImageSplit, numClasses: number): number[][] => rowsByLabel(s.labels, numClasses);

const fraction = (v: number, what: string): number => {
  if (!(Number.isFinite(v) && v >= 0 && v < 1)) throw new UserError(`${what} must be a fraction in [0, 1), got ${v}`);
  return v;
};

/**
 * The stratified split of rows with labels `labels` into train/val/test, class by class: each
 * class's rows are permuted with Rng(seed, 'split', class) and the first round(n * test) go to
 * test, the next round(n * val) to val, the rest to train. Each split's rows are ascending.
 */
export function stratifiedRows(labels: ArrayLike<number>, numClasses: number, val: number, test: number, seed: number): Record<Split, number[]> {
  fraction(val, 'val split');
  fraction(test, 'test split');
  if (val + test >= 1) throw new UserError(`val split + test split must be below 1, got ${val} + ${test}`);
  const parts: Record<Split, number[]> = { train: [], val: [], test: [] };
  rowsByLabel(labels, numClasses).forEach((rows, c) => {
    const perm = Rng.from(seed, 'split', c).permutation(rows.length);
    const nTest = Math.round(rows.length * test);
    const nVal = Math.round(rows.length * val);
    perm.forEach((p, i) => parts[i < nTest ? 'test' : i < nTest + nVal ? 'val' : 'train'].push(rows[p]!));
  });
  for (const s of SPLITS) parts[s].sort((a, b) => a - b);
  return parts;
}

/** Splits the images of one split into train/val/test, class by class (see stratifiedRows). */
export function splitStratified(all: ImageSplit, numClasses: number, val: number, test: number, seed: number): Record<Split, ImageSplit> {
  const parts = stratifiedRows(all.labels, numClasses, val, test, seed);
  return { train: selectRows(all, parts.train), val: selectRows(all, parts.val), test: selectRows(all, parts.test) };
}

/**
 * An ImageFolder root as a task: the split layout (`train/ val/ test/` class folders) as it is,
 * or a flat layout (`<class>/<image>`) split per class with a seeded stratified split.
 */
export function loadImageTask(dir: string, o: ImageTaskOptions = {}): TaskData {
  const data = loadImageFolder(dir, { ...(o.size !== undefined ? { size: o.size } : {}), ...(o.name ? { name: o.name } : {}), flatSplit: 'test' });
  const flat = data.splits.train.n === 0 && data.splits.val.n === 0;
  if (!flat) {
    if (data.splits.train.n === 0) throw new UserError(`${dir}: no training images (train/ is missing or empty)`);
    return data;
  }
  const splits = splitStratified(data.splits.test, data.classNames.length, o.valSplit ?? 0.1, o.testSplit ?? 0.2, o.splitSeed ?? 0);
  return { ...data, splits };
}

/**
 * The k-shot version of a task: k training images per class, drawn with Rng(seed, 'shots', class)
 * (the same k for every class; a class with fewer than k training images is an error). Val and
 * test are kept whole.
 */
export function fewShot(data: TaskData, k: number, seed: number): TaskData {
  if (!(Number.isInteger(k) && k >= 1)) throw new UserError(`shots must be a positive integer, got ${k}`);
  const byClass = rowsByClass(data.splits.train, data.classNames.length);
  const rows: number[] = [];
  byClass.forEach((r, c) => {
    if (r.length < k) throw new UserError(`task '${data.name}': class '${data.classNames[c]}' has ${r.length} training images, fewer than --shots ${k}`);
    const perm = Rng.from(seed, 'shots', c).permutation(r.length);
    for (let i = 0; i < k; i++) rows.push(r[perm[i]!]!);
  });
  rows.sort((a, b) => a - b);
  return { ...data, splits: { ...data.splits, train: selectRows(data.splits.train, rows) } };
}
