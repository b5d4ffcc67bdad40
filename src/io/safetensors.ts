// safetensors read/write (https://github.com/huggingface/safetensors format), bit-exact.
//
// Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON header (padded with spaces
// to a multiple of 8), then the data buffer. The header maps each tensor name to
// {dtype, shape, data_offsets: [begin, end]} (offsets relative to the data buffer) and may hold
// "__metadata__": {string: string}. Tensors are stored in C order, little-endian.
import { Tensor } from '../tensor/tensor.js';
import { N } from '../tensor/ops-native.js';
import { UserError } from '../tensor/errors.js';
import { type DType, DTYPE_BYTES } from '../tensor/dtype.js';
import { writeFileAtomic } from './atomic.js';
import { readAt, readRegular, withFile } from './read.js';

/** safetensors dtype names and the lorkd dtypes they map to. */
const FROM_ST: Record<string, DType> = {
  F64: 'float64', F32: 'float32', F16: 'float16', BF16: 'bfloat16',
  I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool',
};
const TO_ST = Object.fromEntries(Object.entries(FROM_ST).map(([k, v]) => [v, k])) as Record<DType, string>;

const METADATA_KEY = '__metadata__';
/** Largest header accepted (the reference implementation's limit). */
const MAX_HEADER_BYTES = 100_000_000;

/** Tensors to write: a plain object or a Map from name to tensor. */
export type TensorDict = Record<string, Tensor> | Map<string, Tensor>;

export interface SafetensorsContents {
  /** The tensors, by name, on the CPU. They belong to the current tidy scope (if any). */
  tensors: Map<string, Tensor>;
  /** The string-to-string metadata ({} when the file has none). */
  metadata: Record<string, string>;
}

interface Planned {
  header: Uint8Array;
  chunks: Uint8Array[];
}

function entriesOf(tensors: TensorDict): [string, Tensor][] {
  return tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
}

/** Builds the header and the list of data chunks (one per tensor, in file order). */
function plan(tensors: TensorDict, metadata: Record<string, string> | undefined, where: string): Planned {
  const items = entriesOf(tensors).map(([name, t]) => {
    if (name === METADATA_KEY) throw new UserError(`${where}: '${METADATA_KEY}' is reserved and cannot name a tensor`);
    if (!(t instanceof Tensor)) throw new UserError(`${where}: value of '${name}' is not a Tensor`);
    if (t.isDisposed) throw new UserError(`${where}: tensor '${name}' was disposed`);
    const st = TO_ST[t.dtype];
    if (st === undefined) throw new UserError(`${where}: tensor '${name}' has dtype ${t.dtype}, which safetensors cannot store`);
    return { name, t, st, size: DTYPE_BYTES[t.dtype] };
  });
  // As the reference implementation: larger elements first (keeps every tensor aligned), then by name.
  items.sort((a, b) => b.size - a.size || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new UserError(`${where}: metadata value of '${k}' must be a string, got ${typeof v}`);
    }
    header[METADATA_KEY] = { ...metadata };
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const { name, t, st } of items) {
    const bytes = t.toBytes();
    header[name] = { dtype: st, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
    chunks.push(bytes);
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  return { header: head, chunks };
}

/** The safetensors bytes of `tensors` (and optional string metadata). */
export function encodeSafetensors(tensors: TensorDict, metadata?: Record<string, string>): Uint8Array {
  const { header, chunks } = plan(tensors, metadata, 'encodeSafetensors');
  const out = new Uint8Array(header.length + chunks.reduce((s, c) => s + c.length, 0));
  out.set(header, 0);
  let at = header.length;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Writes `tensors` (and optional string metadata) to `file` atomically (see writeFileAtomic): a
 * failed write is a UserError naming the file and the cause, and leaves `file` as it was.
 */
export function saveSafetensors(file: string, tensors: TensorDict, metadata?: Record<string, string>): void {
  const { header, chunks } = plan(tensors, metadata, file);
  writeFileAtomic(file, [header, ...chunks]);
}

export interface LoadOptions {
  /**
   * Accept NaN and infinities in floating-point tensors (default false: such a file is refused,
   * since no model, checkpoint or cache lorkd reads may hold them).
   */
  allowNonFinite?: boolean;
}

/**
 * Reads a safetensors file. Every inconsistency in the file is refused with a UserError naming
 * it, and so are NaN or infinite values unless `allowNonFinite`.
 */
export function loadSafetensors(file: string, o: LoadOptions = {}): SafetensorsContents {
  return decodeSafetensors(readRegular(file), file, { allowNonFinite: o.allowNonFinite ?? false });
}

/**
 * The `__metadata__` of a safetensors file, read from its header alone (8-byte little-endian
 * length, then that much JSON), through the one file reader (a FIFO or device is refused).
 * Errors are one line naming the file: "FILE: not a safetensors file (header length N)".
 */
export function readSafetensorsMetadata(file: string): Record<string, string> {
  return withFile(file, (f) => {
    const fail = (why: string): never => {
      throw new UserError(`${file}: not a safetensors file (${why})`);
    };
    const len = readAt(file, f, 0, 8);
    if (len.length < 8) fail('too short');
    const n = Number(new DataView(len.buffer, len.byteOffset, 8).getBigUint64(0, true));
    if (!(n > 1 && n <= MAX_HEADER_BYTES && 8 + n <= f.size)) fail(`header length ${n}`);
    let header: unknown;
    try {
      header = JSON.parse(Buffer.from(readAt(file, f, 8, n)).toString('utf8'));
    } catch {
      return fail('its header is not JSON');
    }
    const md = (header as { __metadata__?: unknown } | null)?.__metadata__;
    return md && typeof md === 'object' && !Array.isArray(md) ? (md as Record<string, string>) : {};
  });
}

/**
 * Non-finite test on the raw little-endian bytes of one element: the exponent bits all set.
 * (Byte tests need no alignment, so the file's bytes are checked where they are.)
 */
const NON_FINITE: Partial<Record<DType, (b: Uint8Array, i: number) => boolean>> = {
  float32: (b, i) => (b[i + 3]! & 0x7f) === 0x7f && (b[i + 2]! & 0x80) === 0x80,
  float64: (b, i) => (b[i + 7]! & 0x7f) === 0x7f && (b[i + 6]! & 0xf0) === 0xf0,
  float16: (b, i) => (b[i + 1]! & 0x7c) === 0x7c,
  bfloat16: (b, i) => (b[i + 1]! & 0x7f) === 0x7f && (b[i]! & 0x80) === 0x80,
};

/** The number of NaN/infinite elements of a floating-point tensor's bytes (0 for other dtypes). */
export function countNonFinite(bytes: Uint8Array, dtype: DType): number {
  const bad = NON_FINITE[dtype];
  if (!bad) return 0;
  const step = DTYPE_BYTES[dtype];
  let n = 0;
  for (let i = 0; i + step <= bytes.length; i += step) if (bad(bytes, i)) n++;
  return n;
}

interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Decodes safetensors bytes; `name` (the file, by default '<buffer>') prefixes every error.
 * Non-finite values are accepted unless `allowNonFinite: false` (loadSafetensors' default).
 */
export function decodeSafetensors(bytes: Uint8Array, name = '<buffer>', o: LoadOptions = { allowNonFinite: true }): SafetensorsContents {
  const fail = (msg: string): never => {
    throw new UserError(`${name}: ${msg}`);
  };
  if (bytes.length < 8) fail(`truncated safetensors file: ${bytes.length} bytes, the header length alone needs 8`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8)) fail(`header length ${n} is beyond the end of the file (${bytes.length} bytes)`);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  const headerEnd = 8 + Number(n);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, headerEnd));
  } catch {
    return fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header must be a JSON object');
  const dup = findDuplicateKey(text);
  if (dup !== null) fail(`duplicate key '${dup}' in header`);

  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [key, v] of Object.entries(header as Record<string, unknown>)) {
    if (key === METADATA_KEY) {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(`'${METADATA_KEY}' must be an object of strings`);
      for (const [mk, mv] of Object.entries(v as Record<string, unknown>)) {
        if (typeof mv !== 'string') fail(`metadata value of '${mk}' must be a string, got ${JSON.stringify(mv)}`);
        metadata[mk] = mv as string;
      }
      continue;
    }
    entries.push(parseEntry(key, v, fail));
  }

  const dataLength = bytes.length - headerEnd;
  checkLayout(entries, dataLength, fail);
  for (const e of entries) {
    if (e.dtype !== 'bool') continue;
    for (let i = headerEnd + e.begin; i < headerEnd + e.end; i++) {
      if (bytes[i]! > 1) fail(`tensor '${e.name}' (BOOL) holds byte ${bytes[i]} at offset ${i - headerEnd}; booleans must be 0 or 1`);
    }
  }

  if (o.allowNonFinite === false) {
    for (const e of entries) {
      const bad = countNonFinite(bytes.subarray(headerEnd + e.begin, headerEnd + e.end), e.dtype);
      if (bad > 0) {
        const numel = (e.end - e.begin) / DTYPE_BYTES[e.dtype];
        fail(`tensor '${e.name}' holds NaN or infinity (${bad} of ${numel} values): the file is corrupt or comes from a diverged run`);
      }
    }
  }
  const tensors = new Map<string, Tensor>();
  try {
    for (const e of entries) {
      const data = bytes.subarray(headerEnd + e.begin, headerEnd + e.end);
      tensors.set(e.name, Tensor.wrap(N.fromBuffer(data, e.shape, e.dtype)));
    }
  } catch (err) {
    for (const t of tensors.values()) t.dispose();
    throw err;
  }
  return { tensors, metadata };
}

function parseEntry(key: string, v: unknown, fail: (m: string) => never): Entry {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return fail(`entry '${key}' must be an object`);
  const o = v as Record<string, unknown>;
  const st = o.dtype;
  if (typeof st !== 'string' || !Object.prototype.hasOwnProperty.call(FROM_ST, st)) {
    return fail(`tensor '${key}' has unknown dtype ${JSON.stringify(st)} (known: ${Object.keys(FROM_ST).join(', ')})`);
  }
  const shape = o.shape;
  if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && s >= 0)) {
    return fail(`tensor '${key}' has an invalid shape ${JSON.stringify(shape)} (want an array of non-negative integers)`);
  }
  const off = o.data_offsets;
  if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isSafeInteger(x) && x >= 0) || off[0] > off[1]) {
    return fail(`tensor '${key}' has invalid data_offsets ${JSON.stringify(off)} (want [begin, end] with 0 <= begin <= end)`);
  }
  const dtype = FROM_ST[st]!;
  let numel = 1;
  for (const s of shape as number[]) numel *= s;
  const want = numel * DTYPE_BYTES[dtype];
  const [begin, end] = off as [number, number];
  if (end - begin !== want) {
    fail(`tensor '${key}' (${st}[${(shape as number[]).join(', ')}]) needs ${want} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
  }
  return { name: key, dtype, shape: shape as number[], begin, end };
}

/** The data regions must tile [0, dataLength) exactly: no overlap, no gap, nothing out of range. */
function checkLayout(entries: Entry[], dataLength: number, fail: (m: string) => never): void {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let prev: Entry | null = null;
  for (const e of sorted) {
    if (e.end > dataLength) fail(`tensor '${e.name}' data_offsets [${e.begin}, ${e.end}] are out of range: the data buffer has ${dataLength} bytes`);
    if (e.begin < at) fail(`tensor '${e.name}' data_offsets [${e.begin}, ${e.end}] overlap tensor '${prev!.name}' [${prev!.begin}, ${prev!.end}]`);
    if (e.begin > at) fail(`data buffer has a gap: bytes [${at}, ${e.begin}) belong to no tensor`);
    if (e.end > at || prev === null) prev = e;
    at = Math.max(at, e.end);
  }
  if (at !== dataLength) fail(`data buffer has a gap: bytes [${at}, ${dataLength}) belong to no tensor`);
}

/**
 * The first key that appears twice in one JSON object of `text` (already known to be valid JSON),
 * or null. JSON.parse keeps the last duplicate silently, so it is checked here.
 */
function findDuplicateKey(text: string): string | null {
  const stack: (Set<string> | null)[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '{') stack.push(new Set());
    else if (c === '[') stack.push(null);
    else if (c === '}' || c === ']') stack.pop();
    else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      let k = j + 1;
      while (k < text.length && /\s/.test(text[k]!)) k++;
      if (top && text[k] === ':') {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.has(key)) return key;
        top.add(key);
      }
      i = j + 1;
      continue;
    }
    i++;
  }
  return null;
}
