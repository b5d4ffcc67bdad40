// Running an exported ONNX expert with onnxruntime-node: the preprocessing record is read back from
// metadata_props (checked like an expert file's metadata), the session runs preprocessed batches.
import { existsSync } from 'node:fs';
import { readRegular } from '../../io/read.js';
import * as ort from 'onnxruntime-node';
import type { Tensor } from '../../tensor/tensor.js';
import { UserError } from '../../tensor/errors.js';
import { EXPERT_FORMAT, type ExpertMeta, parseExpertMetadata } from '../expert-file.js';
import { checkGraph, onnxModel } from './check-graph.js';
import type { OnnxPreprocessing } from './export.js';

/** An ONNX expert ready to run. */
export interface OnnxExpert {
  meta: ExpertMeta;
  /** Logits (row-major [N, n_classes]) of a preprocessed float32 batch [N, C, S, S]. */
  logits(x: Tensor): Promise<Float32Array>;
  release(): Promise<void>;
}

/** The ExpertMeta recorded in an ONNX file's metadata_props; errors are one-line UserErrors naming the file. */
export function onnxExpertMeta(bytes: Uint8Array, file: string, model = onnxModel(bytes, file)): ExpertMeta {
  const props = (model as { metadata_props?: { key: string; value: string }[] }).metadata_props ?? [];
  const md = Object.fromEntries(props.map((p) => [p.key, p.value]));
  if (md.lorkd_preprocessing === undefined) throw new UserError(`${file}: not a lorkd ONNX expert (no lorkd_preprocessing in metadata_props)`);
  let pre: OnnxPreprocessing;
  try {
    pre = JSON.parse(md.lorkd_preprocessing) as OnnxPreprocessing;
  } catch {
    throw new UserError(`${file}: lorkd_preprocessing is not valid JSON`);
  }
  // The same checks as an expert file's metadata.
  return parseExpertMetadata(
    {
      lorkd_format: EXPERT_FORMAT,
      model: md.lorkd_model ?? '',
      task: md.lorkd_task ?? '',
      class_names: JSON.stringify(pre.class_names),
      input_size: String(pre.input_size),
      channels: String(pre.channels),
      resize: String(pre.resize),
      mean: JSON.stringify(pre.mean),
      std: JSON.stringify(pre.std),
      ...(md.lorkd_version !== undefined ? { lorkd_version: md.lorkd_version } : {}),
    },
    file,
  );
}

/**
 * Loads an ONNX file written by `lorkd export --format onnx` into an onnxruntime-node session;
 * `threads`: its intra-op threads (default: onnxruntime's, every core).
 */
export async function loadOnnxExpert(file: string, o: { threads?: number } = {}): Promise<OnnxExpert> {
  if (!existsSync(file)) throw new UserError(`${file}: ONNX file not found`);
  const bytes = readRegular(file, { what: 'ONNX file' });
  const model = onnxModel(bytes, file);
  const meta = onnxExpertMeta(bytes, file, model);
  // The graph is checked before onnxruntime sees it (check-graph.ts).
  checkGraph(model, file);
  const level = ortLogLevel();
  ort.env.logLevel = level;
  const oneLine = (what: string, e: unknown): UserError => new UserError(`${file}: onnxruntime ${what} (${String((e as Error)?.message ?? e).split('\n')[0]!.replace(/\x1b\[[0-9;]*m/g, '')})`);
  let session: ort.InferenceSession;
  try {
    const threads = o.threads !== undefined ? { intraOpNumThreads: o.threads, interOpNumThreads: 1 } : {};
    session = await ort.InferenceSession.create(bytes, { logSeverityLevel: SEVERITY[level], ...threads });
  } catch (e) {
    throw oneLine('cannot load it', e);
  }
  return {
    meta,
    async logits(x) {
      try {
        // Only the output lorkd reads is fetched.
        const out = await session.run({ input: new ort.Tensor('float32', x.toArray() as Float32Array, x.shape) }, ['logits']);
        return out.logits!.data as Float32Array;
      } catch (e) {
        throw oneLine('failed to run it', e);
      }
    },
    release: () => session.release(),
  };
}

const SEVERITY = { verbose: 0, info: 1, warning: 2, error: 3, fatal: 4 } as const;
type OrtLevel = keyof typeof SEVERITY;

/** onnxruntime's own log level: quiet (fatal only) unless LORKD_ORT_LOG_LEVEL asks for more. */
function ortLogLevel(): OrtLevel {
  const v = (process.env.LORKD_ORT_LOG_LEVEL ?? 'fatal').toLowerCase();
  if (!(v in SEVERITY)) throw new UserError(`LORKD_ORT_LOG_LEVEL="${v}" must be one of ${Object.keys(SEVERITY).join(', ')}`);
  return v as OrtLevel;
}

/** Row-wise softmax of row-major logits with k columns, in float64 (max subtracted). */
export function softmaxRows(logits: ArrayLike<number>, k: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i += k) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, logits[i + j]!);
    let s = 0;
    for (let j = 0; j < k; j++) s += out[i + j] = Math.exp(logits[i + j]! - m);
    for (let j = 0; j < k; j++) out[i + j] = out[i + j]! / s;
  }
  return out;
}
