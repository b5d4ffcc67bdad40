// NumPy .npz reader: a zip of .npy members (np.savez / np.savez_compressed). Every size an archive
// claims (the zip directory's, each member's .npy header) is checked against the stated limit
// (LORKD_MAX_NPZ_BYTES) before anything is inflated, and inflation is bounded by those claims
// (src/data/zip.ts), so a zip bomb is refused in milliseconds at a bounded memory. loadNpz reads
// the archive whole; openNpzFile reads it with pread and streams a large member's rows
// (npyRows), so `lorkd pack` of an npz of any size keeps its memory bounded.
import { closeSync } from 'node:fs';
import { UserError } from '../tensor/errors.js';
import { checkLimit } from '../io/limits.js';
import { openRegular, readAt, readDataFile } from '../io/read.js';
import { type NpyArray, type NpyHeader, parseNpy, parseNpyHeader } from './npy.js';
import { type ZipMember, type ZipSource, zipMembers, memberPrefix, extractMember, memberChunks } from './zip.js';

export { crc32 } from './zip.js';

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

const keyOf = (member: string): string => (member.endsWith('.npy') ? member.slice(0, -4) : member);

/** The .npy header of a member must claim exactly the member's stated size. */
function checkClaims(bytes: Uint8Array | ZipSource, m: ZipMember, source: string, fail: (msg: string) => never): void {
  if (!m.name.endsWith('.npy')) return;
  const head = memberPrefix(bytes, m, 4096, fail);
  let h: ReturnType<typeof parseNpyHeader>;
  try {
    h = parseNpyHeader(head, `${source}: ${m.name}`);
  } catch {
    return; // not readable from the prefix: parseNpy reports it after extraction
  }
  if (h.dataStart + h.dataBytes !== m.size) {
    fail(`member '${m.name}': its .npy header claims shape [${h.shape.join(', ')}] ${h.dtype} (${h.dataStart + h.dataBytes} bytes), the archive states ${m.size} bytes`);
  }
}

/**
 * Reads an .npz archive from bytes. `source` names the file in errors. Errors (UserError): not a
 * zip, truncated, over the size limit, a member that inflates beyond its stated size, corrupt
 * deflate data or CRC mismatch, missing requested keys, and every .npy error.
 */
export function parseNpz(bytes: Uint8Array, source = '<npz>', opts: NpzOptions = {}): Npz {
  const fail: (msg: string) => never = (msg) => {
    throw new UserError(`${source}: ${msg}`);
  };
  const want = opts.keys ? new Set(opts.keys) : null;
  const members = zipMembers(bytes, fail).filter((m) => !want || want.has(keyOf(m.name)));
  const total = members.reduce((s, m) => s + m.size, 0);
  checkLimit('npzBytes', total, `${source}: the archive's members unpack to ${total} bytes`);
  for (const m of members) checkClaims(bytes, m, source, fail);
  const byKey = new Map<string, { member: string; bytes: Uint8Array }>();
  for (const m of members) byKey.set(keyOf(m.name), { member: m.name, bytes: extractMember(bytes, m, fail) });
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
  return parseNpz(readDataFile(path), path, opts);
}

/** An .npz file read with pread: members are listed from its directory, and read whole or streamed by rows. */
export interface NpzFile {
  readonly source: string;
  readonly keys: string[];
  /** The member's .npy header (shape, dtype), from its first bytes only. */
  header(key: string): NpyHeader;
  /** The member read whole (for small arrays: labels), under LORKD_MAX_NPZ_BYTES. */
  get(key: string): NpyArray;
  /**
   * The member's rows (C order: shape[0] rows of the other dimensions), each a new array, streamed
   * from the file (inflated on the way): memory holds a chunk and a row, whatever the member's size.
   */
  rows(key: string): AsyncGenerator<Uint8Array>;
  close(): void;
}

/** Opens an .npz file for reading by member (see NpzFile); only its directory is read now. */
export function openNpzFile(file: string): NpzFile {
  const fail: (msg: string) => never = (msg) => {
    throw new UserError(`${file}: ${msg}`);
  };
  const f = openRegular(file, '.npz file');
  const src: ZipSource = { size: f.size, read: (pos, len) => readAt(file, f, pos, len) };
  let members: ZipMember[];
  try {
    members = zipMembers(src, fail);
  } catch (e) {
    closeSync(f.fd);
    throw e;
  }
  const byKey = new Map(members.map((m) => [keyOf(m.name), m]));
  const keys = [...byKey.keys()];
  const member = (k: string): ZipMember => byKey.get(k) ?? fail(`no array '${k}' in the archive (it has: ${keys.length ? keys.join(', ') : 'nothing'})`);
  const header = (k: string): NpyHeader => {
    const m = member(k);
    checkClaims(src, m, file, fail);
    return parseNpyHeader(memberPrefix(src, m, 1 << 16, fail), `${file}: ${m.name}`);
  };
  return {
    source: file,
    keys,
    header,
    get(k) {
      const m = member(k);
      checkLimit('npzBytes', m.size, `${file}: member '${m.name}' unpacks to ${m.size} bytes`);
      checkClaims(src, m, file, fail);
      return parseNpy(extractMember(src, m, fail), `${file}: ${m.name}`);
    },
    rows(k) {
      const h = header(k);
      return npyRows(memberChunks(file, src, member(k), fail), h, `${file}: ${member(k).name}`);
    },
    close: () => closeSync(f.fd),
  };
}

/** The rows of an .npy stream (its header `h` already parsed from the same bytes): the header is skipped, then rows are cut from the chunks. */
async function* npyRows(chunks: AsyncGenerator<Uint8Array>, h: NpyHeader, source: string): AsyncGenerator<Uint8Array> {
  const rows = h.shape[0] ?? 1;
  const rowBytes = rows === 0 ? 0 : h.dataBytes / rows;
  let skip = h.dataStart;
  let row = new Uint8Array(rowBytes);
  let fill = 0;
  let done = 0;
  for await (const c of chunks) {
    let p = Math.min(skip, c.length);
    skip -= p;
    while (p < c.length && done < rows) {
      const n = Math.min(rowBytes - fill, c.length - p);
      row.set(c.subarray(p, p + n), fill);
      fill += n;
      p += n;
      if (fill === rowBytes) {
        yield row;
        done++;
        row = new Uint8Array(rowBytes);
        fill = 0;
      }
    }
  }
  if (done !== rows) throw new UserError(`${source}: ${done} of ${rows} rows (truncated)`);
}
