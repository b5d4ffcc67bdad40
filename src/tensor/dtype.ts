// Data types and their typed-array views.
export type DType = 'float32' | 'float64' | 'int32' | 'int64' | 'uint8' | 'int8' | 'int16' | 'bool' | 'float16' | 'bfloat16';
export type Device = 'cpu' | `cuda` | `cuda:${number}`;

export type TypedArray =
  | Float32Array
  | Float64Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array;

export const DTYPE_BYTES: Record<DType, number> = {
  float32: 4, float64: 8, int32: 4, int64: 8, uint8: 1, int8: 1, int16: 2, bool: 1, float16: 2, bfloat16: 2,
};

export function isDType(s: string): s is DType {
  return Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

/** The dtype that a typed array holds (Uint16Array is read as float16 bits). */
export function dtypeOfArray(a: TypedArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Uint8Array) return 'uint8';
  if (a instanceof Int8Array) return 'int8';
  if (a instanceof Int16Array) return 'int16';
  return 'float16';
}

/** A typed-array view over bytes of the given dtype. */
export function viewAs(buf: ArrayBuffer, dtype: DType): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(buf);
    case 'float64': return new Float64Array(buf);
    case 'int32': return new Int32Array(buf);
    case 'int64': return new BigInt64Array(buf);
    case 'uint8': case 'bool': return new Uint8Array(buf);
    case 'int8': return new Int8Array(buf);
    case 'int16': return new Int16Array(buf);
    case 'float16': case 'bfloat16': return new Uint16Array(buf);
  }
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}
