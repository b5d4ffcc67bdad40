// Decomposition checkpoints: safetensors with the model's state dict (torchvision backbone names,
// `<conv>.expertA.<task>` / `<conv>.expertB.<task>` beside each expert conv weight,
// `heads.<t>.weight/bias`) and lorkd's config in the metadata: `lorkd_format: "decomposition"` and
// `config`, a JSON object {model, tasks: [{name, classNames, rank, loraAlpha}], rank, loraAlpha,
// inChannels}; a task's own rank and loraAlpha win over the top-level ones. Nothing is pickled.
// Files of earlier versions (one stacked (T, ...) `<conv>.expertA` / `.expertB` per conv, no
// per-task ranks) load too: their stacked factors are split by task.
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { StateDictError } from '../nn/errors.js';
import { type Tensor, type DType, tidy } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { limit, limitHint } from '../io/limits.js';
import { DecompositionModel, type TaskSpec } from './decomposition.js';
import type { StrategyOption } from './strategies.js';

/** The `lorkd_format` metadata value of a decomposition checkpoint. */
export const DECOMPOSITION_FORMAT = 'decomposition';

/** What a checkpoint's `config` metadata holds: everything needed to rebuild the model. */
export interface DecompositionCheckpointConfig {
  model: string;
  tasks: TaskSpec[];
  /** The largest rank (every task's, in files of earlier versions). */
  rank: number;
  loraAlpha: number;
  inChannels: number;
}

const RESERVED = ['lorkd_format', 'config'];
const FLOATING = new Set<DType>(['float32', 'float64', 'float16', 'bfloat16']);

/** The checkpoint config of a decomposition model. */
export function checkpointConfig(dm: DecompositionModel): DecompositionCheckpointConfig {
  const c = dm.config;
  // A task records its own rank and loraAlpha only where they differ from the top-level ones, so a
  // model of equal ranks writes the config of earlier versions.
  const rank = Math.max(...c.tasks.map((t) => t.rank));
  const loraAlpha = c.tasks[0]!.loraAlpha;
  return {
    model: c.model,
    tasks: c.tasks.map((t) => ({
      name: t.name,
      classNames: t.classNames.slice(),
      ...(t.rank !== rank ? { rank: t.rank } : {}),
      ...(t.loraAlpha !== loraAlpha ? { loraAlpha: t.loraAlpha } : {}),
    })),
    rank,
    loraAlpha,
    inChannels: c.inChannels,
  };
}

/**
 * Saves a decomposition model (parameters and BatchNorm buffers, bit-exact, in their dtype) and
 * its config to a safetensors file, atomically. `extraMeta` adds string metadata (e.g. the
 * training run); it cannot override `lorkd_format` or `config`.
 */
export function saveDecomposition(path: string, dm: DecompositionModel, extraMeta: Record<string, string> = {}): void {
  for (const k of RESERVED) if (k in extraMeta) throw new UserError(`saveDecomposition: metadata key "${k}" is reserved`);
  tidy(() => {
    saveSafetensors(path, dm.stateDict(), {
      ...extraMeta,
      lorkd_format: DECOMPOSITION_FORMAT,
      config: JSON.stringify(checkpointConfig(dm)),
    });
  });
}

export interface LoadDecompositionOptions {
  /** EKS strategy of the rebuilt model (default auto). */
  strategy?: StrategyOption;
}

export interface LoadedDecomposition {
  model: DecompositionModel;
  config: DecompositionCheckpointConfig;
  /** All metadata of the file (the extra metadata given at save time included). */
  metadata: Record<string, string>;
}

function parseConfig(text: string | undefined, file: string): DecompositionCheckpointConfig {
  const bad = (why: string): never => {
    throw new UserError(`${file}: bad lorkd config metadata (${why})`);
  };
  if (text === undefined) return bad('no "config" entry');
  let c: unknown;
  try {
    c = JSON.parse(text);
  } catch (e) {
    return bad(`not JSON: ${(e as Error).message}`);
  }
  if (c === null || typeof c !== 'object' || Array.isArray(c)) return bad('not a JSON object');
  const o = c as Record<string, unknown>;
  if (typeof o.model !== 'string') bad('"model" must be a string');
  const posInt = (k: string) => {
    if (!(Number.isInteger(o[k]) && (o[k] as number) > 0)) bad(`"${k}" must be a positive integer, got ${JSON.stringify(o[k])}`);
  };
  posInt('rank');
  posInt('inChannels');
  // A file's values are bounded as the command line's are (docs/LIMITS.md).
  if ((o.rank as number) > limit('rank')) bad(`"rank" ${o.rank} is over the limit (${limitHint('rank')})`);
  if (typeof o.loraAlpha !== 'number' || !Number.isFinite(o.loraAlpha)) bad(`"loraAlpha" must be a finite number`);
  const tasks = o.tasks;
  if (!Array.isArray(tasks) || tasks.length === 0) return bad('"tasks" must be a non-empty array');
  if (tasks.length > limit('tasks')) bad(`${tasks.length} tasks are over the limit (${limitHint('tasks')})`);
  for (const t of tasks as unknown[]) {
    const ok =
      t !== null &&
      typeof t === 'object' &&
      typeof (t as TaskSpec).name === 'string' &&
      Array.isArray((t as TaskSpec).classNames) &&
      (t as TaskSpec).classNames.every((n) => typeof n === 'string');
    if (!ok) bad('every task must be {name: string, classNames: string[]}');
    const { rank, loraAlpha } = t as TaskSpec;
    if (rank !== undefined && !(Number.isInteger(rank) && rank > 0 && rank <= limit('rank'))) bad(`task "${(t as TaskSpec).name}": "rank" must be a positive integer within ${limitHint('rank')}`);
    if (loraAlpha !== undefined && !(typeof loraAlpha === 'number' && Number.isFinite(loraAlpha))) bad(`task "${(t as TaskSpec).name}": "loraAlpha" must be a finite number`);
  }
  return {
    model: o.model as string,
    tasks: (tasks as TaskSpec[]).map((t) => ({
      name: t.name,
      classNames: t.classNames.slice(),
      ...(t.rank !== undefined ? { rank: t.rank } : {}),
      ...(t.loraAlpha !== undefined ? { loraAlpha: t.loraAlpha } : {}),
    })),
    rank: o.rank as number,
    loraAlpha: o.loraAlpha as number,
    inChannels: o.inChannels as number,
  };
}

/**
 * The state dict with the stacked factors of earlier versions (`<conv>.expertA`, (T, ...)) split
 * into one entry per task (`<conv>.expertA.<task>`), in the config's task order. Views: nothing is
 * copied until loadStateDict. Other entries pass as they are.
 */
export function splitStackedFactors(tensors: Map<string, Tensor>, tasks: readonly TaskSpec[]): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, v] of tensors) {
    if ((k.endsWith('.expertA') || k.endsWith('.expertB')) && v.ndim === 3 && v.size(0) === tasks.length) {
      tasks.forEach((t, i) => out.set(`${k}.${t.name}`, v.select(0, i)));
    } else out.set(k, v);
  }
  return out;
}

/**
 * Reads a decomposition checkpoint: rebuilds the model from the metadata (in the dtype of the
 * stored tensors) and loads the tensors strictly. A file that is not a lorkd decomposition
 * checkpoint, or whose tensors do not fit its config, is refused with a one-line UserError naming
 * the file.
 */
export function readDecomposition(path: string, o: LoadDecompositionOptions = {}): LoadedDecomposition {
  return tidy(() => {
    const { tensors, metadata } = loadSafetensors(path);
    if (metadata.lorkd_format !== DECOMPOSITION_FORMAT) {
      const got = metadata.lorkd_format === undefined ? 'no lorkd_format metadata' : `lorkd_format "${metadata.lorkd_format}"`;
      throw new UserError(`${path}: not a lorkd decomposition checkpoint (${got})`);
    }
    const config = parseConfig(metadata.config, path);
    let model: DecompositionModel;
    try {
      model = new DecompositionModel({ ...config, strategy: o.strategy ?? 'auto' });
    } catch (e) {
      if (e instanceof UserError) throw new UserError(`${path}: ${e.message}`);
      throw e;
    }
    try {
      const dtype = [...tensors.values()].map((t: Tensor) => t.dtype).find((d) => FLOATING.has(d));
      if (dtype !== undefined && dtype !== 'float32') model.toDtype(dtype);
      model.loadStateDict(splitStackedFactors(tensors, config.tasks));
    } catch (e) {
      model.dispose();
      if (e instanceof StateDictError) throw new UserError(`${path}: tensors do not fit the checkpoint's config: ${e.message}`);
      throw e;
    }
    return { model, config, metadata };
  });
}

/** Loads a decomposition checkpoint written by saveDecomposition (see readDecomposition). */
export function loadDecomposition(path: string, o: LoadDecompositionOptions = {}): DecompositionModel {
  return readDecomposition(path, o).model;
}
