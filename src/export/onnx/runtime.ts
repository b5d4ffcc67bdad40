// Running an exported ONNX expert with onnxruntime-node: the preprocessing record is read back from
// metadata_props (checked like an expert file's metadata), the session runs preprocessed batches.
import { existsSync } from 'node:fs';
import { readRegular } from '../../io/read.js';
import * as ort from 'onnxruntime-node';
import type { Tensor } from '../../tensor/tensor.js';
import { UserError } from '../../tensor/errors.js';
import { EXPERT_FORMAT, type ExpertMeta, parseExpertMetadata } from '../expert-file.js';
import { decodeModel } from './proto.js';
import type { OnnxPreprocessing } from './export.js';

/** An ONNX expert ready to run. */
export interface OnnxExpert {
  meta: ExpertMeta;
  /** Logits (row-major [N, n_classes]) of a preprocessed float32 batch [N, C, S, S]. */
  logits(x: Tensor): Promise<Float32Array>;
  release(): Promise<void>;
}

/** The ExpertMeta recorded in an ONNX file's metadata_props; errors are one-line UserErrors naming the file. */
export function onnxExpertMeta(bytes: Uint8Array, file: string): ExpertMeta {
  let props: { key: string; value: string }[];
  try {
    props = ((decodeModel(bytes) as { metadata_props?: { key: string; value: string }[] }).metadata_props ?? []);
  } catch (e) {
    throw new UserError(`${file}: not an ONNX model (${(e as Error).message.split('\n')[0]})`);
  }
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

/** Loads an ONNX file written by `lorkd export --format onnx` into an onnxruntime-node session. */
export async function loadOnnxExpert(file: string): Promise<OnnxExpert> {
  if (!existsSync(file)) throw new UserError(`${file}: ONNX file not found`);
  const bytes = readRegular(file, { what: 'ONNX file' });
  const meta = onnxExpertMeta(bytes, file);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes);
  } catch (e) {
    throw new UserError(`${file}: onnxruntime cannot load it (${(e as Error).message.split('\n')[0]})`);
  }
  return {
    meta,
    async logits(x) {
      const out = await session.run({ input: new ort.Tensor('float32', x.toArray() as Float32Array, x.shape) });
      return out.logits!.data as Float32Array;
    },
    release: () => session.release(),
  };
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
