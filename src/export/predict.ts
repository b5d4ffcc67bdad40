// Inference with an exported expert: preprocess inputs exactly as the file's metadata says, then
// softmax class probabilities. Inputs are MedMNIST-format .npz files (one split) or PNG/JPEG files.
import path from 'node:path';
import { type Tensor, cat, noGrad, softmax, tidy } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { type Split, SPLITS } from '../data/dataset.js';
import { loadMedMnist } from '../data/medmnist.js';
import { readImage } from '../data/images.js';
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
  /** True class name, when the input has labels (.npz). */
  label?: string;
}

export interface PredictOptions {
  /** Split of .npz inputs (default 'test'). */
  split?: Split;
  /** Predict at most this many images in all (in input order). */
  limit?: number;
  /** Images per forward pass (default 256). */
  batchSize?: number;
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

/**
 * Class probabilities of image files of any sizes: each is preprocessed on its own (resized from
 * its own size), then they run in batches of `batchSize`.
 */
export function predictImageFiles(model: ImageClassifier, meta: ExpertMeta, files: string[], batchSize = 256): Float32Array[] {
  const out: Float32Array[] = [];
  for (let b = 0; b < files.length; b += batchSize) {
    const imgs = files.slice(b, b + batchSize).map(readImage);
    out.push(...probsOf(model, () => cat(imgs.map((im) => preprocess(meta, im.data, 1, im.height, im.width)), 0)));
  }
  return out;
}

/**
 * Runs the expert in `file` on `inputs`: MedMNIST-format .npz files (the `split` of each; its
 * labels are reported as `label`) and PNG/JPEG files (any size; resized to the expert's input).
 * Returns one Prediction per image, in input order (at most `limit`).
 */
export function predict(file: string, inputs: string[], opts: PredictOptions = {}): Prediction[] {
  const split = opts.split ?? 'test';
  if (!SPLITS.includes(split)) throw new UserError(`split must be one of ${SPLITS.join(', ')}, got "${split}"`);
  const limit = opts.limit ?? Infinity;
  if (!(limit === Infinity || (Number.isInteger(limit) && limit >= 1))) throw new UserError(`limit must be a positive integer, got ${limit}`);
  const batchSize = opts.batchSize ?? 256;
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new UserError(`batch size must be a positive integer, got ${batchSize}`);
  if (inputs.length === 0) throw new UserError('no inputs given');

  const { model, meta } = loadExpertFile(file);
  try {
    const names = meta.classNames;
    const out: Prediction[] = [];
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
    for (let i = 0; i < inputs.length && out.length < limit; ) {
      const input = inputs[i]!;
      if (isNpz(input)) {
        const s = loadMedMnist(input).splits[split];
        const n = Math.min(s.n, limit - out.length);
        const bad = s.labels.subarray(0, n).findIndex((l) => l >= names.length);
        if (bad >= 0) throw new UserError(`${input}: ${split} label ${s.labels[bad]} (sample ${bad}) is out of range for expert "${meta.task}" with ${names.length} classes`);
        const probs = predictProbs(model, meta, s.images.subarray(0, n * 3 * s.height * s.width), n, s.height, s.width, batchSize);
        probs.forEach((p, k) => out.push(row(input, p, k, s.labels[k]!)));
        i++;
        continue;
      }
      // A run of consecutive image files, batched together.
      let j = i;
      while (j < inputs.length && !isNpz(inputs[j]!) && j - i < limit - out.length) j++;
      const files = inputs.slice(i, j);
      predictImageFiles(model, meta, files, batchSize).forEach((p, k) => out.push(row(files[k]!, p)));
      i = j;
    }
    return out;
  } finally {
    model.dispose();
  }
}
