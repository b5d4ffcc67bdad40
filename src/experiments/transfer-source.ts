// Starting points of a transfer (paper 4.3): a deployed network file (an exported expert, the
// foundation), the shared W0 backbone of a decomposition checkpoint (the paper's dagger), or a
// network from scratch (the paper's Baseline). Each comes with its own preprocessing record.
import { recordedPreprocessing } from '../data/preprocessing.js';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadSafetensors } from '../io/safetensors.js';
import { createModel } from '../models/registry.js';
import { ImageClassifier } from '../models/classifier.js';
import { Linear } from '../nn/linear.js';
import type { Triple } from '../data/index.js';
import { manualSeed, type Tensor } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { DECOMPOSITION_FORMAT } from '../lorkd/checkpoint.js';
import { FOUNDATION_FILE, loadFoundation } from './foundation.js';
import { asTriple, fileFormat, readNetworkFile } from './network-file.js';
import { KF_EXPERT_FORMAT, type KfExpert } from './methods/kf-expert.js';

export type SourceKind = 'expert' | 'kf-expert' | 'foundation' | 'backbone' | 'scratch';

/** Where a transfer starts: its weights (rebuilt fresh for every seed) and its preprocessing record. */
export interface TransferSource {
  kind: SourceKind;
  /** The file the weights come from (null for scratch). */
  file: string | null;
  /** Registry name of the architecture. */
  model: string;
  inputSize: number;
  mean: Triple;
  std: Triple;
  /** Parameters of the foundation this network was decomposed from, when known (else null). */
  foundationParams: number | null;
  /** Where foundationParams came from (a file), or null. */
  foundationFile: string | null;
  /** A new network with the source's weights and a freshly initialised head of numClasses (seeded). */
  build(numClasses: number, seed: number): TransferNet;
}

export interface SourceOptions {
  /** A network file, a decomposition checkpoint (with backbone), or 'scratch'. */
  from: string;
  /** With a decomposition checkpoint: transfer its shared W0 backbone (required for that kind). */
  backbone?: boolean;
  /** Architecture for scratch (default shufflenet_v2_x1_0). */
  model?: string;
  /** Input side for scratch (default 64; mean/std 0.5). */
  input?: number;
  /** The foundation file whose parameters the compression ratio divides by (default: found beside the source). */
  foundation?: string;
}

const parseJson = (s: string | undefined, file: string, key: string): unknown => {
  if (s === undefined) throw new UserError(`${file}: metadata lacks "${key}"`);
  try {
    return JSON.parse(s);
  } catch {
    throw new UserError(`${file}: metadata "${key}" is not JSON: ${s}`);
  }
};

/** A network transfer can fine-tune: a plain classifier, or KF's deployed CKN + TSN pair. */
export type TransferNet = ImageClassifier | KfExpert;

/** A new head of numClasses, seeded: the seed decides the downstream head's initialisation. */
function withNewHead<M extends TransferNet>(model: M, numClasses: number, seed: number): M {
  manualSeed(seed);
  if (model instanceof ImageClassifier) {
    model.resetClassifier(numClasses);
  } else {
    const old = model.fc;
    model.registerModule('fc', new Linear(old.inFeatures, numClasses));
    old.dispose();
  }
  return model;
}

/** Parameter count of a foundation file (its model with the unified head). */
export function foundationParams(file: string): number {
  const { model } = loadFoundation(file);
  try {
    return model.numParameters();
  } finally {
    model.dispose();
  }
}

/** The foundation beside a file: `<dir>/foundation.safetensors`, or that of a run folder named in an expert's `source_run`. */
function foundationNear(file: string, run?: string): string | null {
  const candidates = [run && path.join(run, FOUNDATION_FILE), path.join(path.dirname(path.dirname(file)), FOUNDATION_FILE), path.join(path.dirname(file), FOUNDATION_FILE)];
  return candidates.find((c): c is string => !!c && existsSync(c) && path.resolve(c) !== path.resolve(file)) ?? null;
}

function sourceFromFile(o: SourceOptions): Omit<TransferSource, 'foundationParams' | 'foundationFile'> & { near: string | null; own?: number } {
  const file = o.from;
  if (!existsSync(file)) throw new UserError(`${file}: --from file not found (pass a network file, a decomposition checkpoint with --backbone, or scratch)`);
  const { format, metadata } = fileFormat(file);
  if (format === 'expert' || format === 'foundation' || format === KF_EXPERT_FORMAT) {
    const n = readNetworkFile(file);
    const own = n.kind === 'foundation' ? n.model.numParameters() : undefined;
    n.model.dispose();
    return {
      kind: n.kind, file, model: n.arch, inputSize: n.inputSize, mean: n.mean, std: n.std,
      near: n.kind === 'foundation' ? null : foundationNear(file, n.source.run), ...(own !== undefined ? { own } : {}),
      build: (k, seed) => withNewHead(readNetworkFile(file).model, k, seed),
    };
  }
  if (format === DECOMPOSITION_FORMAT) {
    if (!o.backbone) throw new UserError(`${file} is a decomposition checkpoint: pass --backbone to transfer its shared W0 backbone (or export an expert first)`);
    const config = parseJson(metadata.config, file, 'config') as { model?: unknown };
    if (typeof config.model !== 'string') throw new UserError(`${file}: config metadata has no model name`);
    const arch = config.model;
    const pre = recordedPreprocessing(metadata, file, { input: 64 });
    return {
      kind: 'backbone', file, model: arch,
      inputSize: pre.inputSize, mean: asTriple(pre.mean, file, 'mean'), std: asTriple(pre.std, file, 'std'),
      near: foundationNear(file),
      build: (n, seed) => withNewHead(backboneOf(file, arch), n, seed),
    };
  }
  throw new UserError(
    `${file}: not a network lorkd can transfer (lorkd_format ${format === undefined ? 'missing' : `"${format}"`}; expected expert, kf-expert, foundation, or decomposition with --backbone)`,
  );
}

/**
 * The shared W0 backbone of a decomposition checkpoint as a plain network: every tensor but the
 * expert factors (`.expertA.<task>`, `.expertB.<task>`, or stacked in older files) and the task heads (`heads.`), under torchvision's names.
 */
export function backboneOf(file: string, arch: string): ImageClassifier {
  const { tensors } = loadSafetensors(file);
  const model = createModel(arch, { numClasses: 1 });
  try {
    const sd = new Map<string, Tensor>();
    for (const [k, t] of tensors) if (!k.startsWith('heads.') && !/\.expert[AB](\.|$)/.test(k)) sd.set(k, t);
    const r = model.loadStateDict(sd, { strict: false });
    const missing = r.missing.filter((k) => !k.startsWith('fc.'));
    if (missing.length || r.unexpected.length) {
      throw new UserError(`${file}: the backbone does not fit ${arch}: missing ${missing.slice(0, 3).join(', ') || '-'}; unexpected ${r.unexpected.slice(0, 3).join(', ') || '-'}`);
    }
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/** Resolves `--from` (and --backbone, --model, --foundation) to a TransferSource. */
export function resolveSource(o: SourceOptions): TransferSource {
  let s: Omit<TransferSource, 'foundationParams' | 'foundationFile'> & { near: string | null; own?: number };
  if (o.from === 'scratch') {
    const arch = o.model ?? 'shufflenet_v2_x1_0';
    createModel(arch, { numClasses: 1 }).dispose(); // an unknown name fails here, before any work
    s = {
      kind: 'scratch', file: null, model: arch, inputSize: o.input ?? 64, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], near: null,
      build: (n, seed) => {
        manualSeed(seed);
        return createModel(arch, { numClasses: n });
      },
    };
  } else {
    if (o.model !== undefined) throw new UserError('--model is for --from scratch only (a file names its own architecture)');
    s = sourceFromFile(o);
  }
  const foundationFile = o.foundation ?? (s.own !== undefined ? s.file : s.near);
  if (o.foundation !== undefined && !existsSync(o.foundation)) throw new UserError(`${o.foundation}: --foundation file not found`);
  const params = o.foundation === undefined && s.own !== undefined ? s.own : foundationFile ? foundationParams(foundationFile) : null;
  const { near: _near, own: _own, ...rest } = s;
  return { ...rest, foundationParams: params, foundationFile: params === null ? null : foundationFile };
}
