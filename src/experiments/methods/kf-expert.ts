// A deployed KF expert (Knowledge Factor, METHOD.md "Baselines"): the common-knowledge network
// (CKN) and task t's task-specific network (TSN_t) side by side, the classifier over their
// concatenated pooled features. KF cannot fuse, so it deploys as this pair, in one safetensors
// file:
//   tensors   ckn.<torchvision keys of the CKN backbone>, tsn.<... of the TSN>, fc.weight, fc.bias
//   metadata  lorkd_format "kf-expert", ckn_model, tsn_model (registry names), task, class_names,
//             the preprocessing record (input_size, resize, mean, std, channels), lorkd_version
import { existsSync } from 'node:fs';
import { Module } from '../../nn/module.js';
import { Linear } from '../../nn/linear.js';
import { type Tensor, cat, tidy, noGrad } from '../../tensor/index.js';
import { UserError } from '../../tensor/errors.js';
import { loadSafetensors, saveSafetensors } from '../../io/safetensors.js';
import { parsePreprocessing, preprocessingMetadata, type Preprocessing } from '../../data/preprocessing.js';
import { buildAndLoad, lorkdVersion } from '../../export/expert-file.js';
import { FeatureNet } from './backbone.js';

export const KF_EXPERT_FORMAT = 'kf-expert';

export interface KfExpertMeta extends Preprocessing {
  cknModel: string;
  tsnModel: string;
  task: string;
  classNames: string[];
}

/** CKN + TSN_t + the classifier over concat(CKN, TSN_t) features. */
export class KfExpert extends Module {
  constructor(cknModel: string, tsnModel: string, numClasses: number, inChannels: number) {
    super();
    const ckn = this.registerModule('ckn', new FeatureNet(cknModel, inChannels));
    const tsn = this.registerModule('tsn', new FeatureNet(tsnModel, inChannels));
    this.registerModule('fc', new Linear(ckn.numFeatures + tsn.numFeatures, numClasses));
  }
  get ckn(): FeatureNet {
    return this.getModule<FeatureNet>('ckn');
  }
  get tsn(): FeatureNet {
    return this.getModule<FeatureNet>('tsn');
  }
  get fc(): Linear {
    return this.getModule<Linear>('fc');
  }
  /** Logits (B, classes) of images (B, C, S, S). */
  override forward(images: Tensor): Tensor {
    return tidy(() => this.fc.forward(cat([this.ckn.forward(images), this.tsn.forward(images)], 1)));
  }
  override dispose(): void {
    for (const c of this.children()) c.dispose();
  }
}

/** Writes a KF expert (see the file header); `meta` is checked against the network first. `source`: extra provenance metadata (source_<key>). */
export function saveKfExpert(file: string, expert: KfExpert, meta: KfExpertMeta, source: Record<string, string> = {}): void {
  if (meta.classNames.length !== expert.fc.outFeatures) {
    throw new UserError(`saveKfExpert ${file}: the classifier has ${expert.fc.outFeatures} outputs but ${meta.classNames.length} class names are given`);
  }
  if (meta.cknModel !== expert.ckn.model || meta.tsnModel !== expert.tsn.model) {
    throw new UserError(`saveKfExpert ${file}: metadata says ${meta.cknModel} + ${meta.tsnModel}, the network is ${expert.ckn.model} + ${expert.tsn.model}`);
  }
  const md: Record<string, string> = {
    ...preprocessingMetadata(meta),
    lorkd_format: KF_EXPERT_FORMAT,
    ckn_model: meta.cknModel,
    tsn_model: meta.tsnModel,
    task: meta.task,
    class_names: JSON.stringify(meta.classNames),
    lorkd_version: lorkdVersion(),
    ...source,
  };
  tidy(() => saveSafetensors(file, expert.stateDict(), md));
}

/** Reads the metadata of a KF expert file (one-line UserErrors naming the file). */
export function parseKfExpertMetadata(md: Record<string, string>, file: string): KfExpertMeta {
  if (md.lorkd_format !== KF_EXPERT_FORMAT) {
    throw new UserError(`${file}: not a KF expert file (lorkd_format is ${md.lorkd_format === undefined ? 'missing' : `"${md.lorkd_format}"`}, expected "${KF_EXPERT_FORMAT}")`);
  }
  const need = (k: string): string => {
    const v = md[k];
    if (v === undefined || v === '') throw new UserError(`${file}: KF expert metadata lacks "${k}"`);
    return v;
  };
  const p = parsePreprocessing(md, file, { requireClassNames: true, what: 'KF expert metadata' });
  return { ...p, classNames: p.classNames!, cknModel: need('ckn_model'), tsnModel: need('tsn_model'), task: need('task') };
}

/** A loaded KF expert (eval mode; the caller disposes `model`) with `forward(images) -> logits`. */
export interface LoadedKfExpert {
  model: KfExpert;
  meta: KfExpertMeta;
  forward(images: Tensor): Tensor;
}

/** Loads a KF expert file strictly (every key, no extra, same shapes). */
export function loadKfExpert(file: string): LoadedKfExpert {
  if (!existsSync(file)) throw new UserError(`${file}: KF expert file not found`);
  return tidy(() => {
    const { tensors, metadata } = loadSafetensors(file);
    const meta = parseKfExpertMetadata(metadata, file);
    const model = buildAndLoad(file, () => new KfExpert(meta.cknModel, meta.tsnModel, meta.classNames.length, meta.channels), tensors, `${meta.cknModel} + ${meta.tsnModel}, ${meta.classNames.length} classes`);
    model.eval();
    return { model, meta, forward: (images: Tensor) => noGrad(() => model.forward(images)) };
  });
}
