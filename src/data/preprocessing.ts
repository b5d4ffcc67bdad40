// The preprocessing record (timm's pretrained config): how to feed a model. Written into and read
// from the metadata of every model file lorkd writes (expert, foundation, decomposition, method
// networks) in this one place, so a file always says how its inputs are made.
//   input_size   side S of the square input
//   resize       "bilinear" (torch F.interpolate, align_corners=False, no antialias)
//   mean, std    JSON arrays, one number per channel: x = (pixel / 255 - mean) / std
//   channels     input channels (3: grey images are repeated)
//   class_names  JSON array of the output classes (optional: a unified head lists its tasks instead)
import { UserError } from '../tensor/errors.js';
import { limit, limitHint } from '../io/limits.js';

export interface Preprocessing {
  inputSize: number;
  resize: 'bilinear';
  mean: number[];
  std: number[];
  channels: number;
  classNames?: string[];
}

/** The paper's released code: mean = std = 0.5 per channel. */
export const DEFAULT_NORM = [0.5, 0.5, 0.5] as const;

/** A record from the data options of a run (the lorkd defaults filled in). */
export function preprocessingOf(o: { input: number; mean?: readonly number[]; std?: readonly number[]; channels?: number; classNames?: string[] }): Preprocessing {
  return {
    inputSize: o.input,
    resize: 'bilinear',
    mean: [...(o.mean ?? DEFAULT_NORM)],
    std: [...(o.std ?? DEFAULT_NORM)],
    channels: o.channels ?? 3,
    ...(o.classNames ? { classNames: o.classNames.slice() } : {}),
  };
}

/** The problem with a record, or null when it is consistent. */
export function checkPreprocessing(p: Preprocessing): string | null {
  if (!(Number.isInteger(p.inputSize) && p.inputSize >= 1)) return `input_size must be a positive integer, got ${p.inputSize}`;
  // A file's values are bounded as the command line's are (docs/LIMITS.md).
  if (p.inputSize > limit('input')) return `input_size ${p.inputSize} is over the limit (${limitHint('input')})`;
  if (!(Number.isInteger(p.channels) && p.channels >= 1)) return `channels must be a positive integer, got ${p.channels}`;
  if (p.resize !== 'bilinear') return `resize must be "bilinear", got ${JSON.stringify(p.resize)}`;
  for (const [k, v] of [['mean', p.mean], ['std', p.std]] as const) {
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) return `${k} must be an array of finite numbers`;
    if (v.length !== p.channels) return `${k} has ${v.length} values for ${p.channels} channels`;
  }
  if (p.std.some((s) => s === 0)) return 'std must not be 0';
  if (p.classNames !== undefined) {
    if (!Array.isArray(p.classNames) || p.classNames.length === 0 || !p.classNames.every((c) => typeof c === 'string')) return 'class_names must be a non-empty array of strings';
    const dup = p.classNames.find((c, i) => p.classNames!.indexOf(c) !== i);
    if (dup !== undefined) return `class name "${dup}" appears twice in class_names`;
  }
  return null;
}

/** The metadata strings of a record. */
export function preprocessingMetadata(p: Preprocessing): Record<string, string> {
  return {
    input_size: String(p.inputSize),
    resize: p.resize,
    mean: JSON.stringify(p.mean),
    std: JSON.stringify(p.std),
    channels: String(p.channels),
    ...(p.classNames ? { class_names: JSON.stringify(p.classNames) } : {}),
  };
}

/**
 * The record of a file that may leave out input_size, mean and std (decomposition checkpoints):
 * each from the metadata, else from `d` (the command line), else mean = std = 0.5; checked as any
 * record (the input limit included). Errors are UserErrors prefixed with `file`.
 */
export function recordedPreprocessing(md: Record<string, string>, file: string, d: { input?: number; mean?: readonly number[]; std?: readonly number[] } = {}): Preprocessing {
  const fail = (msg: string): never => {
    throw new UserError(`${file}: ${msg}`);
  };
  const text = md.input_size;
  const inputSize = text === undefined ? (d.input ?? fail('the checkpoint records no input_size; pass --input')) : /^[0-9]+$/.test(text) ? Number(text) : fail(`bad input_size "${text}"`);
  const triple = (k: 'mean' | 'std'): number[] => {
    if (md[k] === undefined) return [...(d[k] ?? DEFAULT_NORM)];
    let v: unknown = null;
    try {
      v = JSON.parse(md[k]!);
    } catch {
      // reported below
    }
    return Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x)) ? (v as number[]) : fail(`metadata "${k}" must be 3 finite numbers, got ${md[k]}`);
  };
  const p: Preprocessing = { inputSize, resize: 'bilinear', mean: triple('mean'), std: triple('std'), channels: 3 };
  const bad = checkPreprocessing(p);
  if (bad) fail(bad);
  return p;
}

/**
 * Reads the record from metadata strings; errors are UserErrors prefixed with `file`. Files written
 * before `resize`/`channels` were recorded read as bilinear and 3 channels.
 */
export function parsePreprocessing(md: Record<string, string>, file: string, o: { requireClassNames?: boolean; legacyDefaults?: boolean; what?: string } = {}): Preprocessing {
  const what = o.what ?? 'metadata';
  const fail = (msg: string): never => {
    throw new UserError(`${file}: ${msg}`);
  };
  const need = (k: string): string => md[k] ?? fail(`${what} lacks "${k}"`);
  const json = (k: string): unknown => {
    try {
      return JSON.parse(need(k));
    } catch {
      return fail(`${what} "${k}" is not valid JSON: ${need(k)}`);
    }
  };
  const int = (k: string, dflt?: number): number => {
    if (md[k] === undefined && dflt !== undefined) return dflt;
    const s = need(k);
    return /^[0-9]+$/.test(s) ? Number(s) : fail(`${what} "${k}" must be a positive integer, got "${s}"`);
  };
  const legacy = o.legacyDefaults ?? false;
  const p: Preprocessing = {
    inputSize: int('input_size'),
    resize: (md.resize ?? (legacy ? 'bilinear' : need('resize'))) as 'bilinear',
    mean: json('mean') as number[],
    std: json('std') as number[],
    channels: int('channels', legacy ? 3 : undefined),
    ...(md.class_names !== undefined || o.requireClassNames ? { classNames: json('class_names') as string[] } : {}),
  };
  const bad = checkPreprocessing(p);
  if (bad) fail(`inconsistent ${what}: ${bad}`);
  return p;
}
