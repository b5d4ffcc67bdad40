// A small zip reader for .npz archives (np.savez / np.savez_compressed: stored or deflated
// members, zip64 aware). Sizes come from the central directory and are checked before anything is
// inflated; each member is inflated with node's zlib bounded by its stated size, so an archive
// that claims little and inflates hugely stops at the claim, and its CRC-32 is checked. An archive
// is read from bytes in memory or from a file with pread (ZipSource), and a member is extracted
// whole or streamed in chunks (memberChunks: memory bounded by the chunk, whatever its size).
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream';
import { createInflateRaw, inflateRawSync, constants as zc } from 'node:zlib';

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

/** Random access to an archive's bytes: `read` gives at most `len` bytes at `pos` (fewer at the end). */
export interface ZipSource {
  size: number;
  read(pos: number, len: number): Uint8Array;
}

/** Bytes in memory as a ZipSource (reads are views, no copies). */
export function bytesSource(b: Uint8Array): ZipSource {
  return { size: b.length, read: (pos, len) => b.subarray(pos, pos + len) };
}

const sourceOf = (b: Uint8Array | ZipSource): ZipSource => (b instanceof Uint8Array ? bytesSource(b) : b);
const viewOf = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

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
export function zipMembers(archive: Uint8Array | ZipSource, fail: Fail): ZipMember[] {
  const src = sourceOf(archive);
  // The end of central directory record is in the last 22 + 65535 bytes (its comment is at most 65535).
  const tailAt = Math.max(0, src.size - 22 - 0xffff);
  const tail = src.read(tailAt, src.size - tailAt);
  const tv = viewOf(tail);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail(TRUNCATED);
  let count = tv.getUint16(eocd + 10, true);
  let offset = tv.getUint32(eocd + 16, true);
  const eocdAt = tailAt + eocd;
  if ((count === 0xffff || offset === 0xffffffff) && eocdAt >= 20) {
    const loc = src.read(eocdAt - 20, 20);
    if (loc.length === 20 && viewOf(loc).getUint32(0, true) === 0x07064b50) {
      const z64 = Number(viewOf(loc).getBigUint64(8, true));
      const rec = z64 + 56 <= src.size ? src.read(z64, 56) : new Uint8Array(0);
      if (rec.length < 56 || viewOf(rec).getUint32(0, true) !== 0x06064b50) fail('corrupt zip64 end of central directory');
      count = Number(viewOf(rec).getBigUint64(32, true));
      offset = Number(viewOf(rec).getBigUint64(48, true));
    }
  }
  // The central directory: from its offset up to the end records (read once; offsets below are into it).
  const dir = offset < eocdAt ? src.read(offset, eocdAt - offset) : new Uint8Array(0);
  const dv = viewOf(dir);
  const out: ZipMember[] = [];
  const dec = new TextDecoder();
  let p = 0;
  for (let k = 0; k < count; k++) {
    if (p + 46 > dir.length || dv.getUint32(p, true) !== 0x02014b50) fail(k === 0 && offset >= src.size ? TRUNCATED : 'corrupt zip central directory');
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    if (p + 46 + nameLen + extraLen > dir.length) fail('corrupt zip central directory');
    const m: ZipMember = {
      name: dec.decode(dir.subarray(p + 46, p + 46 + nameLen)),
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

/** Where a member's compressed bytes start (after its local header), checked to lie within the archive. */
function dataStart(src: ZipSource, m: ZipMember, fail: Fail): number {
  const p = m.localOffset;
  const head = src.read(p, 30);
  if (head.length < 30 || viewOf(head).getUint32(0, true) !== 0x04034b50) fail(`corrupt zip archive: no local header for member '${m.name}'`);
  const start = p + 30 + viewOf(head).getUint16(26, true) + viewOf(head).getUint16(28, true);
  if (start + m.compressedSize > src.size) fail(`${TRUNCATED}: member '${m.name}' needs ${m.compressedSize} bytes at offset ${start}`);
  return start;
}

/** The member's compressed bytes (after its local header). */
function rawData(archive: Uint8Array | ZipSource, m: ZipMember, fail: Fail): Uint8Array {
  const src = sourceOf(archive);
  return src.read(dataStart(src, m, fail), m.compressedSize);
}

/**
 * The first bytes of a member (at most `max` of them, fewer when the member is shorter), for
 * reading a header without inflating the rest.
 */
export function memberPrefix(archive: Uint8Array | ZipSource, m: ZipMember, max: number, fail: Fail): Uint8Array {
  const src = sourceOf(archive);
  const start = dataStart(src, m, fail);
  const raw = src.read(start, Math.min(m.compressedSize, Math.max(max, 4096)));
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
/** CRC-32 (IEEE 802.3, as in zip); `prev`: the CRC of the bytes before `data` (a running CRC). */
export function crc32(data: Uint8Array, prev = 0): number {
  if (!crcTable) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  const t = crcTable;
  let c = prev ^ -1;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** Extracts one member: inflated with its stated size as the bound, then length and CRC-32 checked. */
export function extractMember(archive: Uint8Array | ZipSource, m: ZipMember, fail: Fail): Uint8Array {
  const raw = rawData(archive, m, fail);
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

/**
 * A member of the archive in `file` (listed from `src`, the same file), streamed: its bytes in
 * chunks of at most about `chunk` bytes, inflated on the way, never more than its stated size, then
 * its length and CRC-32 checked. Memory holds a chunk or two, whatever the member's size.
 */
export async function* memberChunks(file: string, src: ZipSource, m: ZipMember, fail: Fail, chunk = 1 << 20): AsyncGenerator<Uint8Array> {
  const start = dataStart(src, m, fail);
  if (m.compressedSize === 0) {
    if (m.size !== 0) fail(`member '${m.name}' holds 0 bytes, the archive states ${m.size} (truncated or corrupt)`);
    return;
  }
  const raw = createReadStream(file, { start, end: start + m.compressedSize - 1, highWaterMark: chunk });
  let stream: AsyncIterable<Uint8Array> = raw;
  if (m.method === 8) {
    const inflate = createInflateRaw({ chunkSize: Math.min(chunk, 1 << 16) });
    pipeline(raw, inflate, () => {}); // an error reaches the loop below through the inflate stream
    stream = inflate;
  }
  const it = stream[Symbol.asyncIterator]();
  let n = 0;
  let crc = 0;
  try {
    for (;;) {
      let r: IteratorResult<Uint8Array>;
      try {
        r = await it.next();
      } catch (e) {
        return fail(`corrupt npz (zip) archive: member '${m.name}': ${(e as Error).message}`);
      }
      if (r.done) break;
      n += r.value.length;
      if (n > m.size) fail(`member '${m.name}' inflates beyond its stated size of ${m.size} bytes (a zip bomb or a corrupt archive)`);
      crc = crc32(r.value, crc);
      yield r.value;
    }
  } finally {
    raw.destroy();
  }
  if (n !== m.size) fail(`member '${m.name}' holds ${n} bytes, the archive states ${m.size} (truncated or corrupt)`);
  if (crc !== m.crc) fail(`member '${m.name}' is corrupt (CRC-32 mismatch)`);
}
