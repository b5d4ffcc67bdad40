// A deployed network file of any kind lorkd writes (an exported expert, KF's CKN + TSN pair, the
// foundation), read into one shape: the model, its pooled features and its preprocessing record.
import { existsSync } from 'node:fs';
import { readSafetensorsMetadata } from '../io/safetensors.js';
import { ImageClassifier } from '../models/classifier.js';
import { type Tensor, cat, tidy } from '../tensor/index.js';
import { KF_EXPERT_FORMAT, loadKfExpert, type KfExpert } from './methods/kf-expert.js';
import type { Triple } from '../data/index.js';
import { UserError } from '../tensor/errors.js';
import { loadExpertFile } from '../export/expert-file.js';
import { loadFoundation } from './foundation.js';

export interface NetworkFile {
  kind: 'expert' | 'kf-expert' | 'foundation';
  file: string;
  /** The model, in eval mode (the caller disposes it): a plain classifier, or KF's pair. */
  model: ImageClassifier | KfExpert;
  /** The pooled features the head reads (KF: the CKN's and the TSN's, concatenated). */
  features(x: Tensor): Tensor;
  /** Registry name of the architecture. */
  arch: string;
  /** The expert's task (null for the foundation, which covers every task of its suite). */
  task: string | null;
  /** Class names of the head, in output order (the foundation's: "task/class"). */
  classNames: string[];
  inputSize: number;
  mean: Triple;
  std: Triple;
  /** The file's `source_<key>` provenance (experts only). */
  source: Record<string, string>;
}

export const asTriple = (v: unknown, file: string, key: string): Triple => {
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw new UserError(`${file}: metadata "${key}" must be 3 numbers, got ${JSON.stringify(v)}`);
  }
  return v as unknown as Triple;
};

/**
 * The metadata of a safetensors file, read from its header alone (8-byte little-endian header
 * length, then the JSON header with `__metadata__`), and its `lorkd_format`.
 */
export function fileFormat(file: string): { format: string | undefined; metadata: Record<string, string> } {
  if (!existsSync(file)) throw new UserError(`${file}: file not found`);
  const metadata = readSafetensorsMetadata(file);
  return { format: metadata.lorkd_format, metadata };
}

/** Reads an expert or foundation file; anything else is a one-line UserError. */
export function readNetworkFile(file: string): NetworkFile {
  const { format } = fileFormat(file);
  if (format === 'expert') {
    const { model, meta } = loadExpertFile(file);
    if (meta.channels !== 3) {
      model.dispose();
      throw new UserError(`${file}: only 3-channel networks are supported, this one takes ${meta.channels}`);
    }
    return {
      kind: 'expert', file, model, features: (x) => model.forwardFeatures(x), arch: meta.model, task: meta.task, classNames: meta.classNames.slice(), inputSize: meta.inputSize,
      mean: asTriple(meta.mean, file, 'mean'), std: asTriple(meta.std, file, 'std'), source: { ...meta.source },
    };
  }
  if (format === 'foundation') {
    const { model, meta } = loadFoundation(file);
    model.eval();
    return {
      kind: 'foundation', file, model, features: (x) => model.forwardFeatures(x), arch: meta.model, task: null, classNames: meta.tasks.flatMap((t) => t.classNames.map((c) => `${t.name}/${c}`)),
      inputSize: meta.input, mean: asTriple(meta.mean, file, 'mean'), std: asTriple(meta.std, file, 'std'), source: {},
    };
  }
  if (format === KF_EXPERT_FORMAT) {
    const { model, meta } = loadKfExpert(file);
    if (meta.channels !== 3) {
      model.dispose();
      throw new UserError(`${file}: only 3-channel networks are supported, this one takes ${meta.channels}`);
    }
    return {
      kind: 'kf-expert', file, model, features: (x) => tidy(() => cat([model.ckn.forward(x), model.tsn.forward(x)], 1)),
      arch: `${meta.cknModel}+${meta.tsnModel}`, task: meta.task, classNames: meta.classNames.slice(), inputSize: meta.inputSize,
      mean: asTriple(meta.mean, file, 'mean'), std: asTriple(meta.std, file, 'std'), source: {},
    };
  }
  throw new UserError(`${file}: not a lorkd network file (lorkd_format ${format === undefined ? 'missing' : `"${format}"`}; expected expert, kf-expert or foundation)`);
}
