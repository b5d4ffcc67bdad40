// MedMNIST v2: official INFO of the bundled subsets, and a loader for any MedMNIST-format .npz.
// Data provenance and license: data/medmnist/PROVENANCE.md (CC BY 4.0; cite MedMNIST v2).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../tensor/errors.js';
import { limit, limitHint } from '../io/limits.js';
import { loadNpz, openNpzFile, type Npz, type NpzFile } from './npz.js';
import type { NpyArray } from './npy.js';
import { type ImageSplit, type Split, SPLITS, type TaskData, type TaskType } from './dataset.js';
import { isDirectory, loadImageTask, type ImageTaskOptions } from './image-folder.js';
import { type InfoJson, readInfoJson } from './info-json.js';
import { TASKS64, expandTaskList } from './bundled.js';
import { loadPackTasks, packSource } from './packed.js';

/** One entry of MedMNIST's INFO dict (medmnist/info.py, v2.1.0), for a 2D subset. */
export interface MedMnistInfo {
  pythonClass: string;
  url: string;
  md5: string;
  task: TaskType;
  /** Class names by index (INFO `label`). */
  labels: string[];
  nChannels: 1 | 3;
  nSamples: Record<Split, number>;
  license: string;
}

/** Official INFO of the subsets bundled in data/medmnist (see PROVENANCE.md there). */
export const MEDMNIST_INFO: Readonly<Record<string, MedMnistInfo>> = {
  breastmnist: {
    pythonClass: 'BreastMNIST',
    url: 'https://zenodo.org/record/6496656/files/breastmnist.npz?download=1',
    md5: '750601b1f35ba3300ea97c75c52ff8f6',
    task: 'binary-class',
    labels: ['malignant', 'normal, benign'],
    nChannels: 1,
    nSamples: { train: 546, val: 78, test: 156 },
    license: 'CC BY 4.0',
  },
  pneumoniamnist: {
    pythonClass: 'PneumoniaMNIST',
    url: 'https://zenodo.org/record/6496656/files/pneumoniamnist.npz?download=1',
    md5: '28209eda62fecd6e6a2d98b1501bb15f',
    task: 'binary-class',
    labels: ['normal', 'pneumonia'],
    nChannels: 1,
    nSamples: { train: 4708, val: 524, test: 624 },
    license: 'CC BY 4.0',
  },
  retinamnist: {
    pythonClass: 'RetinaMNIST',
    url: 'https://zenodo.org/record/6496656/files/retinamnist.npz?download=1',
    md5: 'bd4c0672f1bba3e3a89f0e4e876791e4',
    task: 'ordinal-regression',
    labels: ['0', '1', '2', '3', '4'],
    nChannels: 3,
    nSamples: { train: 1080, val: 120, test: 400 },
    license: 'CC BY 4.0',
  },
};

/** Names of the bundled subsets, loadable by name. */
export const BUNDLED_MEDMNIST: readonly string[] = Object.keys(MEDMNIST_INFO);

let root: string | null = null;
/** The package root: the nearest folder above this module that holds package.json. */
export function packageRoot(): string {
  if (root) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return (root = dir);
    const up = path.dirname(dir);
    if (up === dir) throw new Error('lorkd: cannot find the package root (no package.json above ' + fileURLToPath(import.meta.url) + ')');
    dir = up;
  }
}

/** The folder of the bundled MedMNIST files. */
export const medmnistDir = (): string => path.join(packageRoot(), 'data', 'medmnist');
/** The folder of the bundled 64x64 tasks (bloodpbc, kneeoa, braintumor), each with its INFO JSON. */
export const tasks64Dir = (): string => path.join(packageRoot(), 'data', 'tasks64');

export interface MedMnistOptions {
  /** Task name (default: the subset name, or the file name without .npz). */
  name?: string;
  /** Number of classes; default: from INFO if the file is a known subset, else max label + 1. */
  numClasses?: number;
  /** Class names; default: from the INFO JSON beside the file, else the official INFO, else '0'..'K-1'. */
  classNames?: string[];
  /** Folder to look up names in (default: the bundled data/medmnist). */
  dataDir?: string;
}

/** A loaded MedMNIST subset; `info` is set when the file is a known subset, `infoJson` when a `<name>.json` lies beside it. */
export interface MedMnistData extends TaskData {
  file: string;
  info?: MedMnistInfo;
  infoJson?: InfoJson;
}

/** The INFO key for a subset name ('breastmnist', 'BreastMNIST', 'breast'), or undefined. */
export function medmnistKey(name: string): string | undefined {
  const n = name.toLowerCase();
  if (MEDMNIST_INFO[n]) return n;
  if (MEDMNIST_INFO[n + 'mnist']) return n + 'mnist';
  return undefined;
}

const isPath = (s: string): boolean => s.endsWith('.npz') || s.includes('/') || s.includes('\\');

/** Grey (c=1) or RGB (c=3) HWC uint8 images -> CHW with 3 channels (grey repeated). */
function toChw3(src: Uint8Array, n: number, h: number, w: number, c: number): Uint8Array {
  const hw = h * w;
  const out = new Uint8Array(n * 3 * hw);
  if (c === 1) {
    for (let i = 0; i < n; i++) {
      const plane = src.subarray(i * hw, (i + 1) * hw);
      for (let k = 0; k < 3; k++) out.set(plane, (i * 3 + k) * hw);
    }
    return out;
  }
  for (let i = 0; i < n; i++) {
    const s = i * hw * 3;
    const d = i * hw * 3;
    for (let p = 0; p < hw; p++) {
      out[d + p] = src[s + p * 3]!;
      out[d + hw + p] = src[s + p * 3 + 1]!;
      out[d + 2 * hw + p] = src[s + p * 3 + 2]!;
    }
  }
  return out;
}

function labelsOf(a: NpyArray, n: number, what: string, fail: (m: string) => never): Int32Array {
  if (a.dtype === 'float32' || a.dtype === 'float64') fail(`${what} must be integers, got ${a.dtype}`);
  const s = a.shape;
  if (s.length === 2 && s[1]! > 1) fail(`${what} has shape [${s.join(', ')}]: multi-label tasks are not supported`);
  if (!(s.length === 1 || (s.length === 2 && s[1] === 1)) || s[0] !== n) {
    fail(`${what} has shape [${s.join(', ')}], expected [${n}] or [${n}, 1]`);
  }
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = Number(a.data[i]!);
    if (v < 0 || v > 0x7fffffff) fail(`${what}[${i}] = ${v} is not a class index`);
    out[i] = v;
  }
  return out;
}

/** A split's arrays: the images' header and (unless streamed) pixels, and the labels. */
interface SplitArrays {
  images: { dtype: string; shape: number[]; data: Uint8Array | null };
  labels: NpyArray;
}

const wholeSplit = (npz: Npz, split: Split): SplitArrays => {
  const im = npz.get(`${split}_images`);
  return { images: { dtype: im.dtype, shape: im.shape, data: im.dtype === 'uint8' ? (im.data as Uint8Array) : null }, labels: npz.get(`${split}_labels`) };
};

/** The split's images header only (the rows are streamed later: medmnistStream). */
const headerSplit = (npz: NpzFile, split: Split): SplitArrays => {
  const h = npz.header(`${split}_images`);
  return { images: { dtype: h.dtype, shape: h.shape, data: null }, labels: npz.get(`${split}_labels`) };
};

/** The images' channels (1 or 3) from an (N, H, W) or (N, H, W, C) shape. */
const channelsOf = (s: readonly number[]): number => (s.length === 3 ? 1 : s.length === 4 && (s[3] === 1 || s[3] === 3) ? s[3]! : 0);

function splitOf(arrays: SplitArrays, split: Split, fail: (m: string) => never): { split: ImageSplit; channels: 1 | 3 } {
  const im = arrays.images;
  const lb = arrays.labels;
  if (im.dtype !== 'uint8') fail(`${split}_images must be uint8, got ${im.dtype}`);
  const s = im.shape;
  const c = channelsOf(s);
  if (c === 0) fail(`${split}_images has shape [${s.join(', ')}], expected (N, H, W) or (N, H, W, 3)`);
  const [n, h, w] = s as [number, number, number];
  // An npz image is an image: its header's size is bounded by the pixel limit (docs/LIMITS.md).
  if (h * w > limit('imagePixels')) fail(`${split}_images holds ${h}x${w} images, over the limit (${limitHint('imagePixels')})`);
  const labels = labelsOf(lb, n, `${split}_labels`, fail);
  const images = im.data ? toChw3(im.data, n, h, w, c) : new Uint8Array(0);
  return { split: { n, channels: 3, height: h, width: w, images, labels }, channels: c as 1 | 3 };
}

/**
 * Loads a MedMNIST subset: a bundled one by name ('breastmnist', 'pneumoniamnist',
 * 'retinamnist'; case-insensitive, 'mnist' optional), or any MedMNIST-format .npz by path (keys
 * {train,val,test}_{images,labels}; images uint8 (N,H,W) or (N,H,W,3); labels (N,1) or (N,)).
 * Images are stored as uint8 CHW with 3 channels.
 */
export function loadMedMnist(source: string, opts: MedMnistOptions = {}): MedMnistData {
  const file = medmnistFile(source, opts);
  const npz = loadNpz(file.file, { keys: SPLITS.flatMap((s) => [`${s}_images`, `${s}_labels`]) });
  return medmnistTask(file, opts, (s) => wholeSplit(npz, s));
}

/** A MedMNIST-format npz streamed (see loadMedMnist): its task with labels only, and its splits' rows on demand. */
export interface MedMnistStream {
  /** The task as loadMedMnist gives it, but every split's `images` is empty. */
  data: MedMnistData;
  /** Row by row, each uint8 CHW with 3 channels (grey repeated): what loadMedMnist holds for row i. */
  rows(split: Split): AsyncGenerator<Uint8Array>;
  close(): void;
}

/** Opens a MedMNIST subset or npz (as loadMedMnist) without reading its images: they are streamed by `rows`. */
export function medmnistStream(source: string, opts: MedMnistOptions = {}): MedMnistStream {
  const file = medmnistFile(source, opts);
  const npz = openNpzFile(file.file);
  try {
    const data = medmnistTask(file, opts, (s) => headerSplit(npz, s));
    const c = channelsOf(npz.header('train_images').shape);
    return {
      data,
      async *rows(split) {
        const { height: h, width: w } = data.splits[split];
        for await (const r of npz.rows(`${split}_images`)) yield toChw3(r, 1, h, w, c);
      },
      close: () => npz.close(),
    };
  } catch (e) {
    npz.close();
    throw e;
  }
}

/** The file of a bundled name or path, and its MedMNIST INFO key (when it is a known subset). */
function medmnistFile(source: string, opts: MedMnistOptions): { file: string; key: string | undefined; bundled: boolean } {
  let file: string;
  let key: string | undefined;
  const bundled = !isPath(source);
  if (bundled && TASKS64.includes(source.toLowerCase())) {
    file = path.join(opts.dataDir ?? tasks64Dir(), `${source.toLowerCase()}.npz`);
    if (!existsSync(file)) throw new UserError(`${file}: bundled file for '${source}' not found`);
  } else if (bundled) {
    key = medmnistKey(source);
    if (!key) {
      throw new UserError(
        `unknown MedMNIST subset '${source}' (bundled: ${[...BUNDLED_MEDMNIST, ...TASKS64].join(', ')}; named suites: med6, all; pass the path of any other MedMNIST .npz)`,
      );
    }
    file = path.join(opts.dataDir ?? medmnistDir(), `${key}.npz`);
    if (!existsSync(file)) throw new UserError(`${file}: MedMNIST file for '${key}' not found`);
  } else {
    file = source;
    const m = /^([a-z]+mnist)(?:_\d+)?\.npz$/i.exec(path.basename(source));
    key = m ? medmnistKey(m[1]!) : undefined;
  }
  return { file, key, bundled };
}

/** The task of a MedMNIST file from its splits' arrays (checked against INFO and its JSON). */
function medmnistTask({ file, key, bundled }: { file: string; key: string | undefined; bundled: boolean }, opts: MedMnistOptions, arrays: (s: Split) => SplitArrays): MedMnistData {
  const fail: (m: string) => never = (m) => {
    throw new UserError(`${file}: ${m}`);
  };
  const info = key ? MEDMNIST_INFO[key] : undefined;
  const json = readInfoJson(file);
  const parts = SPLITS.map((s) => splitOf(arrays(s), s, fail));
  const splits = { train: parts[0]!.split, val: parts[1]!.split, test: parts[2]!.split };
  const sourceChannels = parts[0]!.channels;
  if (parts.some((p) => p.channels !== sourceChannels)) fail('splits differ in their number of channels');
  if (json) checkAgainstJson(json, sourceChannels, splits);
  if (bundled && info) {
    for (const s of SPLITS) {
      if (splits[s].n !== info.nSamples[s]) fail(`${s} has ${splits[s].n} samples, official ${info.pythonClass} has ${info.nSamples[s]}`);
    }
  }
  let maxLabel = -1;
  for (const s of SPLITS) for (const l of splits[s].labels) if (l > maxLabel) maxLabel = l;
  if (opts.classNames && opts.numClasses !== undefined && opts.classNames.length !== opts.numClasses) {
    throw new UserError(`${file}: ${opts.classNames.length} class names given for ${opts.numClasses} classes`);
  }
  const numClasses = opts.classNames?.length ?? opts.numClasses ?? json?.labels.length ?? info?.labels.length ?? maxLabel + 1;
  if (!(numClasses >= 1)) fail('no labels');
  if (maxLabel >= numClasses) fail(`label ${maxLabel} is out of range for ${numClasses} classes${json ? ` (${json.file} names ${json.labels.length})` : ''}`);
  const known = json?.labels ?? info?.labels;
  const classNames =
    opts.classNames?.slice() ??
    (known && known.length === numClasses ? known.slice() : Array.from({ length: numClasses }, (_, i) => String(i)));
  const task: TaskType = json?.task ?? info?.task ?? (numClasses === 2 ? 'binary-class' : 'multi-class');
  const name = opts.name ?? key ?? path.basename(file).replace(/\.npz$/i, '');
  return { name, classNames, task, sourceChannels, splits, file, ...(info ? { info } : {}), ...(json ? { infoJson: json } : {}) };
}

/** The INFO JSON must describe the file: the same channels, and its n_samples (when given) the split sizes. */
function checkAgainstJson(json: InfoJson, channels: 1 | 3, splits: Record<Split, ImageSplit>): void {
  const fail = (m: string): never => {
    throw new UserError(`${json.file}: ${m}`);
  };
  if (json.nChannels !== channels) fail(`n_channels is ${json.nChannels} but the .npz images have ${channels} channel${channels === 1 ? '' : 's'}`);
  const ns = json.extra.n_samples;
  if (ns === undefined) return;
  if (typeof ns !== 'object' || ns === null) fail('n_samples must be an object {train, val, test}');
  for (const s of SPLITS) {
    const v = (ns as Record<string, unknown>)[s];
    if (v !== undefined && v !== splits[s].n) fail(`n_samples.${s} is ${JSON.stringify(v)} but the .npz has ${splits[s].n} ${s} images`);
  }
}

/**
 * One task of a `--tasks` list: an existing directory (not a bundled name) is an ImageFolder root (task name = the
 * folder's name; see loadImageTask), anything else a bundled MedMNIST name or a MedMNIST-format
 * .npz path (loadMedMnist).
 */
export function loadTask(source: string, opts: ImageTaskOptions = {}): TaskData {
  const named = medmnistKey(source) !== undefined || TASKS64.includes(source.toLowerCase());
  const folder = isDirectory(source) && (isPath(source) || !named);
  return folder ? loadImageTask(source, opts) : loadMedMnist(source);
}

/**
 * The tasks of a `--tasks` list (see loadTask; the named suites `med6` and `all` expand to the six
 * bundled tasks; a pack, `pack:DIR` or its folder, gives every task it holds: packed.ts). Each task keeps its stored image size (28 and 64 may share a suite): batches
 * are resized to the command's input size where they are made (src/data/transforms.ts).
 */
export function loadTasks(sources: readonly string[], opts: ImageTaskOptions & { input?: number } = {}): TaskData[] {
  return expandTaskList(sources).flatMap((s) => {
    const pack = packSource(s);
    return pack !== null ? loadPackTasks(pack, opts) : [loadTask(s, opts)];
  });
}
