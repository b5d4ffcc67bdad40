// What the app needs from an exported .onnx file, read straight off the protobuf wire format
// (no schema, no runtime): ModelProto.metadata_props (field 14: key 1, value 2) and the names of
// the graph's inputs and outputs (ModelProto.graph = 7; GraphProto.input = 11, output = 12;
// ValueInfoProto.name = 1). Every other field, the weights included, is skipped unread.
import { UserError } from '../tensor/errors.js';

/** A length-delimited field or a scalar, by field number, of one protobuf message. */
interface Field {
  field: number;
  /** Bytes of a length-delimited field (wire type 2); absent for scalars. */
  bytes?: Uint8Array;
}

/** Reads a base-128 varint at `pos`; returns [value, next position]. */
function varint(b: Uint8Array, pos: number, fail: (m: string) => never): [number, number] {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= b.length) fail('truncated varint');
    const byte = b[pos++]!;
    v += (byte & 0x7f) * mul;
    if (byte < 0x80) return [v, pos];
    mul *= 128;
  }
  return fail('varint longer than 10 bytes');
}

/** The top-level fields of one message (nested messages are not entered). */
function fields(b: Uint8Array, fail: (m: string) => never): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < b.length) {
    let key: number;
    [key, pos] = varint(b, pos, fail);
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) [, pos] = varint(b, pos, fail);
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      let n: number;
      [n, pos] = varint(b, pos, fail);
      if (pos + n > b.length) fail(`field ${field} runs past the end of the data`);
      out.push({ field, bytes: b.subarray(pos, pos + n) });
      pos += n;
      continue;
    } else fail(`unsupported wire type ${wire} (field ${field})`);
    if (pos > b.length) fail(`field ${field} runs past the end of the data`);
    out.push({ field });
  }
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });
const text = (b: Uint8Array | undefined): string => (b ? utf8.decode(b) : '');

/** The parts of an ONNX model's header the app reads. */
export interface OnnxHeader {
  /** metadata_props as a plain object (a repeated key keeps its last value, as in protobuf maps). */
  metadata: Record<string, string>;
  /** Names of the graph inputs, outputs (initializers listed as inputs by old exporters included). */
  inputs: string[];
  outputs: string[];
}

/** Parses the metadata and graph input/output names of ONNX model bytes; `name` prefixes errors. */
export function readOnnxHeader(bytes: Uint8Array, name = '<onnx>'): OnnxHeader {
  const fail = (m: string): never => {
    throw new UserError(`${name}: not a readable ONNX model (${m})`);
  };
  const top = fields(bytes, fail);
  if (!top.some((f) => f.field === 7 && f.bytes)) fail('no graph');
  const metadata: Record<string, string> = {};
  for (const f of top) {
    if (f.field !== 14 || !f.bytes) continue;
    const kv = fields(f.bytes, fail);
    metadata[text(kv.find((x) => x.field === 1)?.bytes)] = text(kv.find((x) => x.field === 2)?.bytes);
  }
  const inputs: string[] = [];
  const outputs: string[] = [];
  for (const g of top.filter((f) => f.field === 7 && f.bytes)) {
    for (const f of fields(g.bytes!, fail)) {
      if ((f.field !== 11 && f.field !== 12) || !f.bytes) continue;
      const nm = text(fields(f.bytes, fail).find((x) => x.field === 1)?.bytes);
      (f.field === 11 ? inputs : outputs).push(nm);
    }
  }
  return { metadata, inputs, outputs };
}
