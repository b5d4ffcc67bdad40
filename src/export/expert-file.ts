// The exported expert: one deployable model for one task, as a safetensors file.
//
// Tensors: the model's state dict under torchvision's names (a plain `shufflenet_v2_x1_0` with
// an n_t-class head `fc.weight` / `fc.bias`), so torchvision loads it with load_state_dict.
// Metadata (all strings, safetensors `__metadata__`; the preprocessing keys are written and read by
// src/data/preprocessing.ts):
//   lorkd_format  "expert"
//   model         registry name, e.g. "shufflenet_v2_x1_0"
//   task          task name
//   class_names   JSON array of the n_t class names (label i = i-th name)
//   input_size    side S of the square input, e.g. "224"
//   channels      input channels, e.g. "3"
//   resize        "bilinear" (torch F.interpolate, align_corners=False, no antialias)
//   mean, std     JSON arrays, one number per channel: x = (pixel / 255 - mean) / std
//   lorkd_version version of the lorkd that wrote the file
//   source_<key>  optional provenance (e.g. source_decomposition, source_rank)
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { type Tensor, tidy } from '../tensor/index.js';
import type { Module } from '../nn/module.js';
import { UserError } from '../tensor/errors.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { createModel } from '../models/registry.js';
import type { ImageClassifier } from '../models/classifier.js';
import { packageRoot } from '../data/medmnist.js';
import { checkPreprocessing, parsePreprocessing, preprocessingMetadata, type Preprocessing } from '../data/preprocessing.js';

/** Value of the `lorkd_format` metadata key of an expert file. */
export const EXPERT_FORMAT = 'expert';

/** What an expert file says about its model and how to feed it (a preprocessing record plus model and task). */
export interface ExpertMeta extends Preprocessing {
  /** Registry name of the architecture (createModel). */
  model: string;
  /** Task name. */
  task: string;
  /** Class names, one per output of the head. */
  classNames: string[];
  /** Side of the square input the model expects. */
  inputSize: number;
  /** Input channels of the model (3 for every lorkd expert: grey images are repeated). */
  channels: number;
  /** Resize applied to images of another size (only bilinear exists). */
  resize: 'bilinear';
  /** Per-channel normalisation of pixels scaled to [0, 1]. */
  mean: number[];
  std: number[];
  /** Version of lorkd that wrote the file (set by saveExpertFile; read back by loadExpertFile). */
  lorkdVersion?: string;
  /** Optional provenance, stored as `source_<key>` metadata (keys: lowercase letters, digits, '_'). */
  source?: Record<string, string>;
}

let version: string | undefined;
/** lorkd's package version. */
export function lorkdVersion(): string {
  version ??= (JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  return version;
}

const SOURCE_KEY = /^[a-z0-9_]+$/;

/** Checks an ExpertMeta's own consistency; `fail` gets a message without a prefix. */
function checkMeta(m: ExpertMeta, fail: (msg: string) => never): void {
  if (typeof m.model !== 'string' || m.model === '') fail('model name is empty');
  if (typeof m.task !== 'string' || m.task === '') fail('task name is empty');
  if (!Array.isArray(m.classNames) || m.classNames.length === 0) fail('class_names must be a non-empty array of strings');
  const bad = checkPreprocessing(m);
  if (bad) fail(bad);
  for (const k of Object.keys(m.source ?? {})) if (!SOURCE_KEY.test(k)) fail(`source key "${k}" must be lowercase letters, digits or '_'`);
}

/** The metadata strings of an expert file (the preprocessing record's keys from data/preprocessing.ts). */
export function expertMetadata(meta: ExpertMeta): Record<string, string> {
  const out: Record<string, string> = {
    lorkd_format: EXPERT_FORMAT,
    model: meta.model,
    task: meta.task,
    ...preprocessingMetadata(meta),
    lorkd_version: meta.lorkdVersion ?? lorkdVersion(),
  };
  for (const [k, v] of Object.entries(meta.source ?? {})) out[`source_${k}`] = String(v);
  return out;
}

/** Parses and checks the metadata of an expert file; errors are UserErrors prefixed with `file`. */
export function parseExpertMetadata(md: Record<string, string>, file = '<expert>'): ExpertMeta {
  const fail = (msg: string): never => {
    throw new UserError(`${file}: ${msg}`);
  };
  if (md.lorkd_format !== EXPERT_FORMAT) {
    fail(
      md.lorkd_format === undefined
        ? 'not a lorkd expert file (no lorkd_format metadata)'
        : `not a lorkd expert file (lorkd_format is "${md.lorkd_format}", expected "${EXPERT_FORMAT}")`,
    );
  }
  const need = (k: string): string => md[k] ?? fail(`expert metadata lacks "${k}"`);
  const model = need('model');
  const task = need('task');
  const pre = parsePreprocessing(md, file, { requireClassNames: true, what: 'expert metadata' });
  const source: Record<string, string> = {};
  for (const [k, v] of Object.entries(md)) if (k.startsWith('source_')) source[k.slice('source_'.length)] = v;
  const meta: ExpertMeta = {
    model,
    task,
    classNames: pre.classNames!,
    inputSize: pre.inputSize,
    channels: pre.channels,
    resize: pre.resize,
    mean: pre.mean,
    std: pre.std,
    ...(md.lorkd_version !== undefined ? { lorkdVersion: md.lorkd_version } : {}),
    ...(Object.keys(source).length ? { source } : {}),
  };
  checkMeta(meta, (m) => fail(`inconsistent expert metadata: ${m}`));
  return meta;
}

/**
 * Writes `model` as an expert file: its state dict (torchvision names) plus the metadata of
 * `meta` (see the file header). The metadata is checked against the model first: the head must
 * have one output per class name, and the architecture `meta.model` built with those classes
 * and channels must have exactly the model's state-dict keys and shapes. Written atomically.
 */
export function saveExpertFile(file: string, model: ImageClassifier, meta: ExpertMeta): void {
  const fail = (msg: string): never => {
    throw new UserError(`saveExpertFile ${file}: ${msg}`);
  };
  checkMeta(meta, fail);
  if (model.numClasses !== meta.classNames.length) fail(`the model's head has ${model.numClasses} outputs but ${meta.classNames.length} class names are given`);
  tidy(() => {
    const sd = model.stateDict();
    const ref = createModel(meta.model, { numClasses: meta.classNames.length, inChannels: meta.channels });
    try {
      const want = ref.stateDict();
      const extra = [...sd.keys()].filter((k) => !want.has(k));
      const missing = [...want.keys()].filter((k) => !sd.has(k));
      if (extra.length || missing.length) {
        fail(`the model is not a ${meta.model}: ${[...missing.map((k) => `missing ${k}`), ...extra.map((k) => `unexpected ${k}`)].slice(0, 5).join(', ')}`);
      }
      for (const [k, t] of want) {
        const got = sd.get(k)!.shape;
        if (got.join() !== t.shape.join()) fail(`${k} has shape [${got.join(', ')}], a ${meta.model} with ${meta.channels} channels has [${t.shape.join(', ')}]`);
      }
    } finally {
      ref.dispose();
    }
    saveSafetensors(file, sd, expertMetadata(meta));
  });
}

/** A loaded expert: the model (in eval mode, owned by the caller: dispose() it) and its metadata. */
export interface Expert {
  model: ImageClassifier;
  meta: ExpertMeta;
}


/**
 * Builds the network a model file's metadata describes and loads the file's tensors into it
 * strictly; either failure is one line naming the file (`what` says what the metadata claimed).
 */
export function buildAndLoad<M extends Module>(file: string, build: () => M, tensors: Map<string, Tensor>, what: string): M {
  let model: M;
  try {
    model = build();
  } catch (e) {
    throw e instanceof UserError ? new UserError(`${file}: ${e.message}`) : e;
  }
  try {
    model.loadStateDict(tensors, { strict: true });
  } catch (e) {
    model.dispose();
    throw e instanceof UserError ? new UserError(`${file}: inconsistent with its metadata (${what}): ${e.message}`) : e;
  }
  return model;
}

/**
 * Loads an expert file: checks the metadata, builds `meta.model` with createModel and loads the
 * tensors strictly (every key present, none extra, same shapes). The model is returned in eval
 * mode. A missing file, a file that is not an expert, and inconsistent metadata or tensors are
 * one-line UserErrors naming the file.
 */
export function loadExpertFile(file: string): Expert {
  if (!existsSync(file)) throw new UserError(`${file}: expert file not found`);
  return tidy(() => {
    const { tensors, metadata } = loadSafetensors(file);
    const meta = parseExpertMetadata(metadata, file);
    const model = buildAndLoad(file, () => createModel(meta.model, { numClasses: meta.classNames.length, inChannels: meta.channels }), tensors, `model ${meta.model}, ${meta.classNames.length} classes`);
    model.eval();
    return { model, meta };
  });
}
