// NumPy .npz reader: a zip of .npy members (np.savez / np.savez_compressed), unzipped with fflate.
// fflate does not check CRC-32, so every member read is checked against the zip's central directory.
import { readFileSync } from 'node:fs';
import { unzipSync } from 'fflate';
import { UserError } from '../tensor/errors.js';
import { type NpyArray, parseNpy } from './npy.js';

/** The arrays of one .npz archive, keyed like np.load (member name without ".npy"). */
export interface Npz {
  /** File name used in messages. */
  readonly source: string;
  /** Keys of the members that were extracted (all members unless `keys` was given). */
  readonly keys: string[];
  has(key: string): boolean;
  /** The parsed array; throws a UserError naming the file and the available keys if absent. */
  get(key: string): NpyArray;
}

export interface NpzOptions {
  /** Extract only these keys (each must exist). */
  keys?: string[];
}

let crcTable: Int32Array | null = null;
/** CRC-32 (IEEE 802.3, as in zip). */
export function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  const t = crcTable;
  let c = -1;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** Member name -> CRC-32 from the central directory (zip64 aware). */
function centralCrcs(b: Uint8Array, fail: (msg: string) => never): Map<string, number> {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let eocd = -1;
  for (let i = b.length - 22; i >= Math.max(0, b.length - 22 - 0xffff); i--) {
    if (dv.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail('not a valid npz (zip) archive: no end of central directory');
  let count = dv.getUint16(eocd + 10, true);
  let offset = dv.getUint32(eocd + 16, true);
  if ((count === 0xffff || offset === 0xffffffff) && eocd >= 20 && dv.getUint32(eocd - 20, true) === 0x07064b50) {
    const z64 = Number(dv.getBigUint64(eocd - 12, true));
    if (z64 + 56 > b.length || dv.getUint32(z64, true) !== 0x06064b50) fail('corrupt zip64 end of central directory');
    count = Number(dv.getBigUint64(z64 + 32, true));
    offset = Number(dv.getBigUint64(z64 + 48, true));
  }
  const out = new Map<string, number>();
  const dec = new TextDecoder();
  let p = offset;
  for (let k = 0; k < count; k++) {
    if (p + 46 > b.length || dv.getUint32(p, true) !== 0x02014b50) fail('corrupt zip central directory');
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    out.set(dec.decode(b.subarray(p + 46, p + 46 + nameLen)), dv.getUint32(p + 16, true));
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

const keyOf = (member: string): string => (member.endsWith('.npy') ? member.slice(0, -4) : member);

/**
 * Reads an .npz archive from bytes. `source` names the file in errors. Errors (UserError): not a
 * zip, truncated, corrupt deflate data or CRC mismatch, missing requested keys, and every .npy error.
 */
export function parseNpz(bytes: Uint8Array, source = '<npz>', opts: NpzOptions = {}): Npz {
  const fail: (msg: string) => never = (msg) => {
    throw new UserError(`${source}: ${msg}`);
  };
  const want = opts.keys ? new Set(opts.keys) : null;
  let members: Record<string, Uint8Array>;
  try {
    members = unzipSync(bytes, want ? { filter: (f) => want.has(keyOf(f.name)) } : undefined);
  } catch (e) {
    const msg = (e as Error).message;
    fail(msg === 'invalid zip data' ? 'not a valid npz (zip) archive, or truncated' : `corrupt npz (zip) archive: ${msg}`);
  }
  const crcs = centralCrcs(bytes, fail);
  const byKey = new Map<string, { member: string; bytes: Uint8Array }>();
  for (const [member, data] of Object.entries(members)) {
    const expected = crcs.get(member);
    if (expected === undefined) fail(`member '${member}' is missing from the central directory`);
    if (crc32(data) !== expected) fail(`member '${member}' is corrupt (CRC-32 mismatch)`);
    byKey.set(keyOf(member), { member, bytes: data });
  }
  const keys = [...byKey.keys()];
  const missing = (k: string): never =>
    fail(`no array '${k}' in the archive (it has: ${keys.length ? keys.join(', ') : 'nothing'})`);
  if (want) for (const k of want) if (!byKey.has(k)) missing(k);
  const cache = new Map<string, NpyArray>();
  return {
    source,
    keys,
    has: (k) => byKey.has(k),
    get(k) {
      let a = cache.get(k);
      if (!a) {
        const m = byKey.get(k);
        if (!m) return missing(k);
        a = parseNpy(m.bytes, `${source}: ${m.member}`);
        cache.set(k, a);
      }
      return a;
    },
  };
}

/** Reads an .npz file from disk (see parseNpz). */
export function loadNpz(path: string, opts: NpzOptions = {}): Npz {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new UserError(`${path}: cannot read file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseNpz(bytes, path, opts);
}
