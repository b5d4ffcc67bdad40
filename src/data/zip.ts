// A small zip reader for .npz archives (np.savez / np.savez_compressed: stored or deflated
// members, zip64 aware). Sizes come from the central directory and are checked before anything is
// inflated; each member is inflated with node's zlib bounded by its stated size, so an archive
// that claims little and inflates hugely stops at the claim, and its CRC-32 is checked.
import { inflateRawSync, constants as zc } from 'node:zlib';

export interface ZipMember {
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  compressedSize: number;
  /** Uncompressed size, as the central directory states it. */
  size: number;
  crc: number;
  localOffset: number;
}

type Fail = (msg: string) => never;

const TRUNCATED = 'not a valid npz (zip) archive, or truncated';

/** The zip64 extended-information extra field overrides the 0xFFFFFFFF sizes and offset. */
function zip64(dv: DataView, at: number, len: number, m: ZipMember): void {
  for (let p = at; p + 4 <= at + len; ) {
    const id = dv.getUint16(p, true);
    const n = dv.getUint16(p + 2, true);
    if (id === 0x0001) {
      let q = p + 4;
      const next = (): number => {
        const v = Number(dv.getBigUint64(q, true));
        q += 8;
        return v;
      };
      if (m.size === 0xffffffff && q + 8 <= p + 4 + n) m.size = next();
      if (m.compressedSize === 0xffffffff && q + 8 <= p + 4 + n) m.compressedSize = next();
      if (m.localOffset === 0xffffffff && q + 8 <= p + 4 + n) m.localOffset = next();
      return;
    }
    p += 4 + n;
  }
}

/** The members listed in the central directory. */
export function zipMembers(b: Uint8Array, fail: Fail): ZipMember[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let eocd = -1;
  for (let i = b.length - 22; i >= Math.max(0, b.length - 22 - 0xffff); i--) {
    if (dv.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail(TRUNCATED);
  let count = dv.getUint16(eocd + 10, true);
  let offset = dv.getUint32(eocd + 16, true);
  if ((count === 0xffff || offset === 0xffffffff) && eocd >= 20 && dv.getUint32(eocd - 20, true) === 0x07064b50) {
    const z64 = Number(dv.getBigUint64(eocd - 12, true));
    if (z64 + 56 > b.length || dv.getUint32(z64, true) !== 0x06064b50) fail('corrupt zip64 end of central directory');
    count = Number(dv.getBigUint64(z64 + 32, true));
    offset = Number(dv.getBigUint64(z64 + 48, true));
  }
  const out: ZipMember[] = [];
  const dec = new TextDecoder();
  let p = offset;
  for (let k = 0; k < count; k++) {
    if (p + 46 > b.length || dv.getUint32(p, true) !== 0x02014b50) fail(k === 0 && p >= b.length ? TRUNCATED : 'corrupt zip central directory');
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    if (p + 46 + nameLen + extraLen > b.length) fail('corrupt zip central directory');
    const m: ZipMember = {
      name: dec.decode(b.subarray(p + 46, p + 46 + nameLen)),
      method: dv.getUint16(p + 10, true),
      crc: dv.getUint32(p + 16, true),
      compressedSize: dv.getUint32(p + 20, true),
      size: dv.getUint32(p + 24, true),
      localOffset: dv.getUint32(p + 42, true),
    };
    zip64(dv, p + 46 + nameLen, extraLen, m);
    if (m.method !== 0 && m.method !== 8) fail(`member '${m.name}' uses compression method ${m.method} (only stored and deflated are supported)`);
    out.push(m);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

/** The member's compressed bytes (after its local header). */
function rawData(b: Uint8Array, m: ZipMember, fail: Fail): Uint8Array {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const p = m.localOffset;
  if (p + 30 > b.length || dv.getUint32(p, true) !== 0x04034b50) fail(`corrupt zip archive: no local header for member '${m.name}'`);
  const start = p + 30 + dv.getUint16(p + 26, true) + dv.getUint16(p + 28, true);
  if (start + m.compressedSize > b.length) fail(`${TRUNCATED}: member '${m.name}' needs ${m.compressedSize} bytes at offset ${start}`);
  return b.subarray(start, start + m.compressedSize);
}

/**
 * The first bytes of a member (at most `max` of them, fewer when the member is shorter), for
 * reading a header without inflating the rest.
 */
export function memberPrefix(b: Uint8Array, m: ZipMember, max: number, fail: Fail): Uint8Array {
  const raw = rawData(b, m, fail);
  if (m.method === 0) return raw.subarray(0, max);
  try {
    // A few KiB of deflate input inflate to at most ~1032 times as much: bounded, and enough.
    const head = inflateRawSync(raw.subarray(0, 4096), { finishFlush: zc.Z_SYNC_FLUSH, maxOutputLength: 8 << 20 });
    return head.subarray(0, max);
  } catch {
    return new Uint8Array(0);
  }
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

/** Extracts one member: inflated with its stated size as the bound, then length and CRC-32 checked. */
export function extractMember(b: Uint8Array, m: ZipMember, fail: Fail): Uint8Array {
  const raw = rawData(b, m, fail);
  let data: Uint8Array;
  if (m.method === 0) {
    data = raw;
  } else {
    try {
      data = inflateRawSync(raw, { maxOutputLength: Math.max(1, m.size) });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') fail(`member '${m.name}' inflates beyond its stated size of ${m.size} bytes (a zip bomb or a corrupt archive)`);
      return fail(`corrupt npz (zip) archive: member '${m.name}': ${(e as Error).message}`);
    }
  }
  if (data.length !== m.size) fail(`member '${m.name}' holds ${data.length} bytes, the archive states ${m.size} (truncated or corrupt)`);
  if (crc32(data) !== m.crc) fail(`member '${m.name}' is corrupt (CRC-32 mismatch)`);
  return data;
}
