// An ONNX teacher's preprocessing and classes: from its metadata_props when lorkd wrote it
// (lorkd_preprocessing; lorkd_tasks of a foundation, or lorkd_task + class_names of an expert),
// otherwise from --teacher-input/--teacher-mean/--teacher-std (--teacher-resize: bilinear, the only
// resize lorkd makes). Neither: a one-line error, not a guess.
import { readFileSync } from 'node:fs';
import { UserError } from '../../tensor/errors.js';
import type { Triple } from '../../data/index.js';
import { decodeModel } from '../../export/onnx/index.js';
import { parsePreprocessing } from '../../data/preprocessing.js';
import { metaTasks } from '../../io/metadata.js';
import type { TeacherFlags, TeacherPreprocessing } from './teacher.js';

export interface OnnxTeacherInfo {
  preprocessing: TeacherPreprocessing;
  tasks: { name: string; classNames: string[] }[] | null;
  /** Where the preprocessing came from, for the log. */
  source: 'metadata' | 'flags';
  /** The architecture the file states (lorkd_model), or "onnx". */
  arch: string;
  /** The output names the file states (lorkd's foundation files: "features" and "logits"). */
  names: { features?: string; logits?: string };
}

/** The metadata_props of an ONNX file (a one-line error when it is not ONNX). */
export function onnxProps(file: string): Record<string, string> {
  let props: { key: string; value: string }[];
  try {
    props = (decodeModel(readFileSync(file)) as { metadata_props?: { key: string; value: string }[] }).metadata_props ?? [];
  } catch (e) {
    throw new UserError(`${file}: not an ONNX model (${(e as Error).message.split('\n')[0]})`);
  }
  return Object.fromEntries(props.map((p) => [p.key, p.value]));
}

const PRE_FLAGS = ['input', 'mean', 'std', 'resize'] as const;

function triple(v: number[], flag: string, file: string): Triple {
  if (v.length !== 3) throw new UserError(`${file}: ${flag} needs 3 numbers (one per RGB channel), got ${v.length}`);
  return v as unknown as Triple;
}

export function onnxTeacherInfo(file: string, props: Record<string, string>, flags: TeacherFlags): OnnxTeacherInfo {
  const given = PRE_FLAGS.filter((k) => flags[k] !== undefined).map((k) => `--teacher-${k}`);
  if (props.lorkd_preprocessing !== undefined) {
    if (given.length) throw new UserError(`${file} states its preprocessing in its metadata: ${given.join(', ')} do not apply`);
    let md: Record<string, unknown>;
    try {
      md = JSON.parse(props.lorkd_preprocessing) as Record<string, unknown>;
    } catch {
      throw new UserError(`${file}: lorkd_preprocessing is not valid JSON`);
    }
    const asStrings = Object.fromEntries(Object.entries(md).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
    const pre = parsePreprocessing(asStrings, file, { what: 'lorkd_preprocessing' });
    if (pre.channels !== 3) throw new UserError(`${file} takes ${pre.channels}-channel inputs; lorkd feeds RGB (3)`);
    const tasks = props.lorkd_tasks !== undefined ? metaTasks(props, 'lorkd_tasks', file)
      : pre.classNames && props.lorkd_task ? [{ name: props.lorkd_task, classNames: pre.classNames }] : null;
    const names = props.lorkd_format === 'foundation' ? { features: 'features', logits: 'logits' } : {};
    return { preprocessing: { input: pre.inputSize, mean: triple(pre.mean, 'mean', file), std: triple(pre.std, 'std', file) }, tasks, source: 'metadata', names, arch: props.lorkd_model ?? 'onnx' };
  }
  const missing = (['input', 'mean', 'std'] as const).filter((k) => flags[k] === undefined).map((k) => `--teacher-${k}`);
  if (missing.length) {
    throw new UserError(`${file} does not state its preprocessing (no lorkd_preprocessing metadata): give ${missing.join(', ')}${given.length ? '' : ' (and --teacher-resize bilinear)'}`);
  }
  if ((flags.resize ?? 'bilinear') !== 'bilinear') throw new UserError(`--teacher-resize must be bilinear (the only resize lorkd makes), got "${flags.resize}"`);
  if (flags.std!.some((s) => s === 0)) throw new UserError('--teacher-std must not be 0');
  return { preprocessing: { input: flags.input!, mean: triple(flags.mean!, '--teacher-mean', file), std: triple(flags.std!, '--teacher-std', file) }, tasks: null, source: 'flags', names: {}, arch: props.lorkd_model ?? 'onnx' };
}
