// ONNX protobuf messages through protobufjs, from the descriptor generated from the vendored
// onnx.proto (schema.ts; source and license in NOTICE). Field names are the .proto's (snake_case).
import protobuf from 'protobufjs';
import { ONNX_SCHEMA } from './schema.js';

let root: protobuf.Root | undefined;
function modelType(): protobuf.Type {
  root ??= protobuf.Root.fromJSON(ONNX_SCHEMA);
  return root.lookupType('onnx.ModelProto');
}

/** TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, INT64: 7 } as const;
/** AttributeProto.AttributeType values used here. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7 } as const;

/** A plain-object ModelProto (snake_case fields) -> its protobuf bytes. Throws on a field of the wrong type. */
export function encodeModel(model: Record<string, unknown>): Uint8Array {
  const T = modelType();
  const err = T.verify(model);
  if (err) throw new Error(`ONNX ModelProto: ${err}`);
  return T.encode(T.fromObject(model)).finish();
}

/** ModelProto bytes -> a plain object (int64 as numbers, bytes as Uint8Array). */
export function decodeModel(bytes: Uint8Array): Record<string, unknown> {
  const T = modelType();
  return T.toObject(T.decode(bytes), { longs: Number, defaults: false }) as Record<string, unknown>;
}
