// An ONNX model is checked before onnxruntime runs it: its inputs and outputs must be the ones
// `lorkd export --format onnx` writes (input "input"; outputs "logits" and optionally "cam", no
// other), and every tensor size the graph states in advance must be within LORKD_MAX_TENSOR_BYTES:
// declared inputs, outputs and value_info (dynamic dimensions counted as 1), initializers, and the
// shapes that ConstantOfShape and Expand are given as constants. A 5 MB file claiming a
// [40000, 40000] output is refused from its header, before any allocation.
import { UserError } from '../../tensor/errors.js';
import { limitHint, limit } from '../../io/limits.js';
import { decodeModel } from './proto.js';

/** The outputs lorkd reads from an exported expert, and the ones it may carry. */
const REQUIRED_OUTPUTS = ['logits'];
const ALLOWED_OUTPUTS = ['logits', 'cam'];

/** Bytes per element of TensorProto.DataType values (unknown types count 8). */
const ELEMENT_BYTES: Record<number, number> = { 1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2 };

interface Dim {
  dim_value?: number;
  dim_param?: string;
}
interface ValueInfo {
  name?: string;
  type?: { tensor_type?: { elem_type?: number; shape?: { dim?: Dim[] } } };
}
interface TensorProto {
  name?: string;
  dims?: number[];
  data_type?: number;
  int64_data?: number[];
  raw_data?: Uint8Array;
}
interface NodeProto {
  op_type?: string;
  input?: string[];
  output?: string[];
  attribute?: { name?: string; t?: TensorProto }[];
}
interface GraphProto {
  input?: ValueInfo[];
  output?: ValueInfo[];
  value_info?: ValueInfo[];
  initializer?: TensorProto[];
  node?: NodeProto[];
}

/** Values of a 1-D int64 tensor (a shape), or null when it holds none readable. */
function int64s(t: TensorProto): number[] | null {
  if (t.int64_data?.length) return t.int64_data.map(Number);
  const raw = t.raw_data;
  if (t.data_type !== 7 || !raw || raw.length % 8) return null;
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return Array.from({ length: raw.length / 8 }, (_, i) => Number(dv.getBigInt64(8 * i, true)));
}

/** The decoded ModelProto of an ONNX file's bytes, or one line naming the file. */
export function onnxModel(bytes: Uint8Array, file: string): Record<string, unknown> {
  try {
    return decodeModel(bytes);
  } catch (e) {
    throw new UserError(`${file}: not an ONNX model (${(e as Error).message.split('\n')[0]})`);
  }
}

/** Checks a decoded ModelProto (onnxModel); a problem is one UserError naming `file`. */
export function checkGraph(model: Record<string, unknown>, file: string): void {
  const fail = (msg: string): never => {
    throw new UserError(`${file}: ${msg}`);
  };
  const g = (model.graph ?? {}) as GraphProto;
  const inputs = (g.input ?? []).map((v) => v.name ?? '');
  const outputs = (g.output ?? []).map((v) => v.name ?? '');
  if (!inputs.includes('input')) fail(`no graph input named "input" (inputs: ${inputs.join(', ') || 'none'}); export it with lorkd export --format onnx`);
  for (const o of REQUIRED_OUTPUTS) if (!outputs.includes(o)) fail(`no graph output named "${o}" (outputs: ${outputs.join(', ') || 'none'}); export it with lorkd export --format onnx`);
  const extra = outputs.filter((o) => !ALLOWED_OUTPUTS.includes(o));
  if (extra.length) fail(`unexpected graph output${extra.length > 1 ? 's' : ''} ${extra.map((o) => `"${o}"`).join(', ')} (a lorkd expert has ${ALLOWED_OUTPUTS.join(' and ')})`);

  const max = limit('tensorBytes');
  const check = (what: string, dims: number[], elemType: number | undefined): void => {
    const bytes = dims.reduce((a, d) => a * Math.max(1, d), ELEMENT_BYTES[elemType ?? 1] ?? 8);
    if (dims.some((d) => !Number.isFinite(d) || d < 0) || bytes > max) {
      fail(`${what} has shape [${dims.join(', ')}] (${bytes} bytes), over the limit (${limitHint('tensorBytes')})`);
    }
  };
  for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.value_info ?? [])]) {
    const t = v.type?.tensor_type;
    if (!t?.shape?.dim) continue;
    check(`tensor "${v.name}"`, t.shape.dim.map((d) => (d.dim_value !== undefined ? Number(d.dim_value) : 1)), t.elem_type);
  }
  const constants = new Map<string, TensorProto>();
  for (const t of g.initializer ?? []) {
    check(`initializer "${t.name}"`, (t.dims ?? []).map(Number), t.data_type);
    constants.set(t.name ?? '', t);
  }
  for (const n of g.node ?? []) {
    const value = n.op_type === 'Constant' ? n.attribute?.find((a) => a.name === 'value')?.t : undefined;
    if (value && n.output?.[0]) constants.set(n.output[0], value);
  }
  // Ops whose output size is a constant input: ConstantOfShape (input 0), Expand (input 1).
  for (const n of g.node ?? []) {
    const at = n.op_type === 'ConstantOfShape' ? 0 : n.op_type === 'Expand' ? 1 : -1;
    const shape = at >= 0 ? constants.get(n.input?.[at] ?? '') : undefined;
    const dims = shape && int64s(shape);
    if (dims) check(`${n.op_type} "${n.output?.[0] ?? ''}"`, dims, n.op_type === 'ConstantOfShape' ? (n.attribute?.find((a) => a.name === 'value')?.t?.data_type ?? 1) : 1);
  }
}
