// Inference with an exported expert: preprocess inputs exactly as the file's metadata says, then
// softmax class probabilities. Inputs are MedMNIST-format .npz files (one split), image files
// (PNG, JPEG, DICOM) and folders of them (walked recursively; class subfolders named after the
// expert's classes give labels). predictInputs keeps going past a bad file and reports it.
import { readdirSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import path from 'node:path';
import { type Tensor, cat, noGrad, softmax, tidy } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { type Split, SPLITS } from '../data/dataset.js';
import { loadMedMnist } from '../data/medmnist.js';
import { IMAGE_EXTENSIONS, type Image, readImage } from '../data/images.js';
import { isDicom } from '../data/dicom.js';
import { imagesToTensor, type Triple } from '../data/transforms.js';
import type { ImageClassifier } from '../models/classifier.js';
import { type ExpertMeta, loadExpertFile } from './expert-file.js';

/** The prediction for one image. */
export interface Prediction {
  /** The input it came from: an image file, or the .npz file. */
  input: string;
  /** Sample index within the .npz split (absent for image files). */
  index?: number;
  /** Predicted class name (largest probability; the first on ties). */
  class: string;
  /** Probability of every class, by class name (they sum to 1). */
  probs: Record<string, number>;
  /** True class name, when the input has labels (.npz, or a class subfolder of a folder input). */
  label?: string;
}

/** An input that could not be predicted, and why (one line). */
export interface PredictFailure {
  input: string;
  error: string;
}

export interface PredictOptions {
  /** Split of .npz inputs (default 'test'). */
  split?: Split;
  /** Predict at most this many images in all (in input order). */
  limit?: number;
  /** Images per forward pass (default 256). */
  batchSize?: number;
}

export interface PredictInputsOptions extends PredictOptions {
  /** Called once per bad input, as it is met. */
  onFailure?: (f: PredictFailure) => void;
  /** Called after every batch with the images done and the images in all (an upper bound with --limit). */
  onProgress?: (done: number, total: number) => void;
}

export interface PredictReport {
  predictions: Prediction[];
  failures: PredictFailure[];
  /** Files in folder inputs that are neither images nor DICOM (not counted as failures). */
  skipped: number;
}

/**
 * uint8 (n, 3, h, w) images -> the model's input: resized bilinearly to the expert's input size
 * (unless already that size), scaled to [0, 1], normalised with its mean and std.
 */
export function preprocess(meta: ExpertMeta, images: Uint8Array, n: number, height: number, width: number): Tensor {
  if (meta.channels !== 3) throw new UserError(`expert "${meta.task}" takes ${meta.channels}-channel input; predict supports 3-channel experts`);
  return imagesToTensor(images, n, height, width, { size: meta.inputSize, mean: meta.mean as unknown as Triple, std: meta.std as unknown as Triple });
}

const isNpz = (f: string): boolean => path.extname(f).toLowerCase() === '.npz';

/** Softmax probabilities of a preprocessed batch, one row per image. */
function probsOf(model: ImageClassifier, x: () => Tensor): Float32Array[] {
  const p = tidy(() => noGrad(() => softmax(model.forward(x()), 1).toArray() as Float32Array));
  const n = p.length / model.numClasses;
  return Array.from({ length: n }, (_, i) => p.slice(i * model.numClasses, (i + 1) * model.numClasses));
}

/**
 * Class probabilities (n rows of numClasses) of uint8 (n, 3, h, w) images, in batches of
 * `batchSize`, each under tidy and noGrad. The model must be in eval mode.
 */
export function predictProbs(model: ImageClassifier, meta: ExpertMeta, images: Uint8Array, n: number, height: number, width: number, batchSize = 256): Float32Array[] {
  const out: Float32Array[] = [];
  const per = 3 * height * width;
  for (let b = 0; b < n; b += batchSize) {
    const m = Math.min(batchSize, n - b);
    out.push(...probsOf(model, () => preprocess(meta, images.subarray(b * per, (b + m) * per), m, height, width)));
  }
  return out;
}

/** Class probabilities of decoded images of any sizes: each is preprocessed on its own, then they run as one batch. */
function probsOfImages(model: ImageClassifier, meta: ExpertMeta, imgs: Image[]): Float32Array[] {
  return probsOf(model, () => cat(imgs.map((im) => preprocess(meta, im.data, 1, im.height, im.width)), 0));
}

/**
 * Class probabilities of image files (PNG, JPEG, DICOM) of any sizes, in batches of `batchSize`.
 * The first unreadable file throws its UserError.
 */
export function predictImageFiles(model: ImageClassifier, meta: ExpertMeta, files: string[], batchSize = 256): Float32Array[] {
  const out: Float32Array[] = [];
  for (let b = 0; b < files.length; b += batchSize) out.push(...probsOfImages(model, meta, files.slice(b, b + batchSize).map(readImage)));
  return out;
}

/** True when the file starts with the DICOM Part 10 signature (read from its first 132 bytes). */
function hasDicomSignature(file: string): boolean {
  const head = new Uint8Array(132);
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    return readSync(fd, head, 0, 132, 0) === 132 && isDicom(head);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** One image file to predict, with its label when a class subfolder gives one. */
interface FileItem {
  file: string;
  label?: number;
}

/**
 * The image files under folder `dir`, recursively, sorted by path: files with a PNG/JPEG/DICOM
 * extension, and other files that carry the DICOM signature (DICOM files often have no extension).
 * When every direct subfolder of `dir` is named after a class of the expert, files under
 * subfolder c are labelled c.
 */
function walkFolder(dir: string, classNames: string[], report: PredictReport): FileItem[] {
  const files: string[] = [];
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch (e) {
      report.failures.push({ input: d, error: `${d}: cannot read folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` });
      return;
    }
    for (const n of names) {
      if (n.startsWith('.')) continue;
      const p = path.join(d, n);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        if (IMAGE_EXTENSIONS.includes(path.extname(n).toLowerCase()) || hasDicomSignature(p)) files.push(p);
        else report.skipped++;
      }
    }
  };
  walk(dir);
  let subs: string[] = [];
  try {
    subs = readdirSync(dir).filter((n) => !n.startsWith('.') && statSync(path.join(dir, n)).isDirectory());
  } catch {
    // reported by walk
  }
  const labelled = subs.length > 0 && subs.every((s) => classNames.includes(s));
  return files.map((file) => {
    if (!labelled) return { file };
    const top = path.relative(dir, file).split(path.sep)[0]!;
    return { file, label: classNames.indexOf(top) };
  });
}

function isFolder(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Checks the options; returns them with defaults. */
function checkOptions(opts: PredictOptions): { split: Split; limit: number; batchSize: number } {
  const split = opts.split ?? 'test';
  if (!SPLITS.includes(split)) throw new UserError(`split must be one of ${SPLITS.join(', ')}, got "${split}"`);
  const limit = opts.limit ?? Infinity;
  if (!(limit === Infinity || (Number.isInteger(limit) && limit >= 1))) throw new UserError(`limit must be a positive integer, got ${limit}`);
  const batchSize = opts.batchSize ?? 256;
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new UserError(`batch size must be a positive integer, got ${batchSize}`);
  return { split, limit, batchSize };
}

/**
 * Runs the expert in `file` on `inputs`: MedMNIST-format .npz files (the `split` of each; its
 * labels are reported as `label`), image files (PNG, JPEG or DICOM, any size; resized to the
 * expert's input) and folders of them. Returns the predictions in input order (at most `limit`)
 * and every input that failed (unreadable, corrupt, unsupported), each with a one-line reason;
 * the others are predicted all the same. A bad expert file or bad options throw a UserError.
 */
export function predictInputs(file: string, inputs: string[], opts: PredictInputsOptions = {}): PredictReport {
  const { split, limit, batchSize } = checkOptions(opts);
  if (inputs.length === 0) throw new UserError('no inputs given');
  const { model, meta } = loadExpertFile(file);
  const report: PredictReport = { predictions: [], failures: [], skipped: 0 };
  const names = meta.classNames;
  const fail = (input: string, e: unknown): void => {
    if (!(e instanceof UserError)) throw e;
    const f = { input, error: e.message.split('\n')[0]! };
    report.failures.push(f);
    opts.onFailure?.(f);
  };
  const row = (input: string, p: Float32Array, index?: number, label?: number): Prediction => {
    let best = 0;
    for (let k = 1; k < p.length; k++) if (p[k]! > p[best]!) best = k;
    return {
      input,
      ...(index !== undefined ? { index } : {}),
      class: names[best]!,
      probs: Object.fromEntries(names.map((c, k) => [c, p[k]!])),
      ...(label !== undefined ? { label: names[label]! } : {}),
    };
  };
  try {
    // Expand folders first, so progress knows the total.
    type Item = { npz: string } | FileItem;
    const items: Item[] = [];
    for (const input of inputs) {
      if (isNpz(input) && !isFolder(input)) items.push({ npz: input });
      else if (isFolder(input)) {
        const found = walkFolder(input, names, report);
        if (found.length === 0) fail(input, new UserError(`${input}: no PNG, JPEG or DICOM files in this folder`));
        items.push(...found);
      } else items.push({ file: input });
    }
    const total = Math.min(limit, items.reduce((n, it) => n + ('npz' in it ? 0 : 1), 0));
    let done = 0;
    let pending: { item: FileItem; img: Image }[] = [];
    const flush = (): void => {
      if (!pending.length) return;
      const probs = probsOfImages(model, meta, pending.map((p) => p.img));
      probs.forEach((p, k) => report.predictions.push(row(pending[k]!.item.file, p, undefined, pending[k]!.item.label)));
      done += pending.length;
      pending = [];
      opts.onProgress?.(done, total);
    };
    const room = (): number => limit - report.predictions.length - pending.length;
    for (const it of items) {
      if (room() <= 0) break;
      if ('npz' in it) {
        flush();
        try {
          const s = loadMedMnist(it.npz).splits[split];
          const n = Math.min(s.n, room());
          const bad = s.labels.subarray(0, n).findIndex((l) => l >= names.length);
          if (bad >= 0) throw new UserError(`${it.npz}: ${split} label ${s.labels[bad]} (sample ${bad}) is out of range for expert "${meta.task}" with ${names.length} classes`);
          const probs = predictProbs(model, meta, s.images.subarray(0, n * 3 * s.height * s.width), n, s.height, s.width, batchSize);
          probs.forEach((p, k) => report.predictions.push(row(it.npz, p, k, s.labels[k]!)));
        } catch (e) {
          fail(it.npz, e);
        }
        continue;
      }
      try {
        pending.push({ item: it, img: readImage(it.file) });
      } catch (e) {
        fail(it.file, e);
      }
      if (pending.length >= batchSize) flush();
    }
    flush();
    return report;
  } finally {
    model.dispose();
  }
}

/**
 * predictInputs that throws the first failure (a UserError naming the input) instead of going on;
 * returns the predictions.
 */
export function predict(file: string, inputs: string[], opts: PredictOptions = {}): Prediction[] {
  const r = predictInputs(file, inputs, {
    ...opts,
    onFailure: (f) => {
      throw new UserError(f.error);
    },
  });
  return r.predictions;
}
