// NumPy .npz reader: a zip of .npy members (np.savez / np.savez_compressed). Every size an archive
// claims (the zip directory's, each member's .npy header) is checked against the stated limit
// (LORKD_MAX_NPZ_BYTES) before anything is inflated, and inflation is bounded by those claims
// (src/data/zip.ts), so a zip bomb is refused in milliseconds at a bounded memory.
import { UserError } from '../tensor/errors.js';
import { checkLimit } from '../io/limits.js';
import { readDataFile } from '../io/read.js';
import { type NpyArray, parseNpy, parseNpyHeader } from './npy.js';
import { type ZipMember, zipMembers, memberPrefix, extractMember } from './zip.js';

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
function checkClaims(bytes: Uint8Array, m: ZipMember, source: string, fail: (msg: string) => never): void {
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
