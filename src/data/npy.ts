// NumPy .npy reader (format versions 1.0, 2.0 and 3.0; little-endian, C order).
// Spec: numpy/lib/format.py docstring ("NPY format").
import { UserError } from '../tensor/errors.js';
import type { TypedArray } from '../tensor/dtype.js';
import { readDataFile } from '../io/read.js';

/** The element types lorkd reads, named as lorkd's tensor dtypes. */
export type NpyDType = 'uint8' | 'bool' | 'int32' | 'int64' | 'float32' | 'float64';

/** One array from a .npy file: C-order data of `shape`. */
export interface NpyArray {
  dtype: NpyDType;
  shape: number[];
  /** Uint8Array for uint8/bool, Int32Array, BigInt64Array, Float32Array or Float64Array. May view the input bytes. */
  data: TypedArray;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** descr kind+size (without byte order) -> dtype, element size. */
const KINDS: Record<string, [NpyDType, number]> = {
  u1: ['uint8', 1],
  b1: ['bool', 1],
  i4: ['int32', 4],
  i8: ['int64', 8],
  f4: ['float32', 4],
  f8: ['float64', 8],
};
const SUPPORTED = "'|u1', '|b1', '<i4', '<i8', '<f4', '<f8'";

/** Header values: strings, booleans, integers, tuples and lists of them. */
type PyValue = string | boolean | number | PyValue[] | null;

/** Parses the Python dict literal of an .npy header (only what numpy writes). */
function parseHeaderDict(src: string, fail: (msg: string) => never): Map<string, PyValue> {
  let i = 0;
  const ws = () => {
    while (i < src.length && /\s/.test(src[i]!)) i++;
  };
  const expect = (c: string) => {
    ws();
    if (src[i] !== c) fail(`corrupt header: expected '${c}' at offset ${i} in ${JSON.stringify(src.trim())}`);
    i++;
  };
  const value = (): PyValue => {
    ws();
    const c = src[i];
    if (c === "'" || c === '"') {
      const end = src.indexOf(c, i + 1);
      if (end < 0) fail('corrupt header: unterminated string');
      const s = src.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    if (c === '(' || c === '[') {
      const close = c === '(' ? ')' : ']';
      i++;
      const items: PyValue[] = [];
      for (;;) {
        ws();
        if (src[i] === close) {
          i++;
          return items;
        }
        items.push(value());
        ws();
        if (src[i] === ',') i++;
        else if (src[i] !== close) fail(`corrupt header: expected ',' or '${close}' at offset ${i}`);
      }
    }
    const m = /^(True|False|None|-?\d+L?)/.exec(src.slice(i));
    if (!m) fail(`corrupt header: unexpected text at offset ${i} in ${JSON.stringify(src.trim())}`);
    i += m[0].length;
    if (m[0] === 'True') return true;
    if (m[0] === 'False') return false;
    if (m[0] === 'None') return null;
    return Number(m[0].replace('L', ''));
  };
  const out = new Map<string, PyValue>();
  expect('{');
  for (;;) {
    ws();
    if (src[i] === '}') {
      i++;
      break;
    }
    const k = value();
    if (typeof k !== 'string') fail('corrupt header: dict keys must be strings');
    expect(':');
    out.set(k, value());
    ws();
    if (src[i] === ',') i++;
    else if (src[i] !== '}') fail(`corrupt header: expected ',' or '}' at offset ${i}`);
  }
  ws();
  if (i !== src.length) fail('corrupt header: text after the dict');
  return out;
}

function dtypeOf(descr: PyValue, fail: (msg: string) => never): [NpyDType, number] {
  if (typeof descr !== 'string') fail(`unsupported dtype (structured arrays are not supported; supported: ${SUPPORTED})`);
  const m = /^([<>|=]?)([a-zA-Z]\d+)$/.exec(descr);
  const kind = m ? KINDS[m[2]!] : undefined;
  if (!m || !kind) fail(`unsupported dtype '${descr}' (supported: ${SUPPORTED})`);
  const order = m[1]!;
  if (kind[1] > 1 && order === '>') fail(`dtype '${descr}' is big-endian; only little-endian arrays are supported`);
  if (kind[1] > 1 && order !== '<') fail(`dtype '${descr}' has no explicit byte order; expected '<${m[2]}'`);
  return kind;
}

export interface NpyHeader {
  dtype: NpyDType;
  itemSize: number;
  shape: number[];
  numel: number;
  /** Offset of the data, i.e. the header's size. */
  dataStart: number;
  /** The data's size the header claims: numel * itemSize. */
  dataBytes: number;
}

/**
 * Parses the header of a .npy file from its first bytes (all of the file, or a prefix holding at
 * least the header): magic, version, dtype, order and shape. UserErrors name `source`.
 */
export function parseNpyHeader(bytes: Uint8Array, source = '<npy>'): NpyHeader {
  const fail: (msg: string) => never = (msg) => {
    throw new UserError(`${source}: ${msg}`);
  };
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) fail('not a .npy file (bad magic string)');
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if (![1, 2, 3].includes(major) || minor !== 0) fail(`unsupported .npy format version ${major}.${minor} (supported: 1.0, 2.0, 3.0)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenBytes) fail('truncated header');
  const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = 8 + lenBytes;
  const dataStart = start + headerLen;
  if (dataStart > bytes.length) fail(`truncated header (needs ${dataStart} bytes, file has ${bytes.length})`);
  const headerBytes = bytes.subarray(start, dataStart);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(headerBytes);
  const dict = parseHeaderDict(header, fail);
  for (const k of ['descr', 'fortran_order', 'shape']) if (!dict.has(k)) fail(`corrupt header: no '${k}' key`);
  const [dtype, itemSize] = dtypeOf(dict.get('descr')!, fail);
  const fortran = dict.get('fortran_order');
  if (typeof fortran !== 'boolean') fail("corrupt header: 'fortran_order' must be True or False");
  if (fortran) fail('Fortran-ordered arrays are not supported (save with np.ascontiguousarray)');
  const shapeV = dict.get('shape');
  if (!Array.isArray(shapeV) || shapeV.some((d) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)) {
    fail(`corrupt header: 'shape' must be a tuple of non-negative integers, got ${JSON.stringify(shapeV)}`);
  }
  const shape = shapeV as number[];
  const numel = shape.reduce((a, b) => a * b, 1);
  return { dtype, itemSize, shape, numel, dataStart, dataBytes: numel * itemSize };
}

/**
 * Parses the bytes of one .npy file. `source` names the file in error messages (e.g.
 * "data.npz: train_images.npy"). Errors are UserErrors: bad magic, unknown version, corrupt header,
 * Fortran order, unsupported or big-endian dtype, truncated or over-long data.
 */
export function parseNpy(bytes: Uint8Array, source = '<npy>'): NpyArray {
  const fail: (msg: string) => never = (msg) => {
    throw new UserError(`${source}: ${msg}`);
  };
  const { dtype, itemSize, shape, numel, dataStart, dataBytes: need } = parseNpyHeader(bytes, source);
  const have = bytes.length - dataStart;
  if (have < need) fail(`truncated data: shape [${shape.join(', ')}] ${dtype} needs ${need} bytes, file has ${have}`);
  if (have > need) fail(`corrupt file: ${have - need} unexpected bytes after the data of shape [${shape.join(', ')}] ${dtype}`);

  const off = bytes.byteOffset + dataStart;
  // Typed arrays need aligned offsets; copy when the input is not aligned for the element size.
  const aligned = off % itemSize === 0;
  const buf = aligned ? bytes.buffer : bytes.slice(dataStart).buffer;
  const o = aligned ? off : 0;
  let data: TypedArray;
  switch (dtype) {
    case 'uint8': case 'bool': data = new Uint8Array(buf, o, numel); break;
    case 'int32': data = new Int32Array(buf, o, numel); break;
    case 'int64': data = new BigInt64Array(buf, o, numel); break;
    case 'float32': data = new Float32Array(buf, o, numel); break;
    case 'float64': data = new Float64Array(buf, o, numel); break;
  }
  return { dtype, shape, data };
}

/** Reads and parses a .npy file from disk (a file over LORKD_MAX_NPZ_BYTES is refused before reading). */
export function loadNpy(path: string): NpyArray {
  return parseNpy(readDataFile(path), path);
}
