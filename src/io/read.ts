// The one way lorkd reads a file it is given: stat first and accept only a regular file (a FIFO, a
// device, a socket or a folder is refused by name, before anything is opened), open it
// non-blocking (so a file swapped for a FIFO after the stat cannot hang the open), check the open
// file again, and read at most the size the stat stated, under a limit. Every failure is one
// UserError naming the file: "FILE: cannot read image (a FIFO, not a regular file)".
import { type Stats, closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { UserError } from '../tensor/errors.js';
import { checkLimit, type LimitName } from './limits.js';

/** What a non-regular file is, for messages. */
function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'something else';
}

/** "FILE: cannot read WHAT (WHY)". */
function readError(file: string, what: string, why: string): UserError {
  return new UserError(`${file}: cannot read ${what} (${why})`);
}

const codeOf = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

function refuse(file: string, what: string, st: Stats): never {
  throw readError(file, what, `${kindOf(st)}, not a regular file`);
}

/** An open regular file: its descriptor and the size stated when it was opened. */
export interface OpenFile {
  fd: number;
  size: number;
}

/**
 * Opens `file` for reading if it is a regular file (checked by stat before the open and by fstat
 * after it); the open never blocks. Close it with closeSync(fd), or use withFile.
 */
export function openRegular(file: string, what = 'file'): OpenFile {
  let st: Stats;
  try {
    st = statSync(file);
  } catch (e) {
    throw readError(file, what, codeOf(e));
  }
  if (!st.isFile()) refuse(file, what, st);
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    throw readError(file, what, codeOf(e));
  }
  const now = fstatSync(fd);
  if (!now.isFile()) {
    closeSync(fd);
    refuse(file, what, now);
  }
  return { fd, size: now.size };
}

/** Runs `fn` on the open regular file `file` and closes it. */
export function withFile<T>(file: string, fn: (f: OpenFile) => T, what = 'file'): T {
  const f = openRegular(file, what);
  try {
    return fn(f);
  } finally {
    closeSync(f.fd);
  }
}

/**
 * Reads `length` bytes at `position` of an open file (fewer at its end); read errors (EIO, ...) are
 * one line naming `file`. With `into` (long enough), the bytes go to its start and a view of it is
 * returned, so a caller reading row after row makes no garbage.
 */
export function readAt(file: string, f: OpenFile, position: number, length: number, into?: Uint8Array): Uint8Array {
  const n = Math.max(0, Math.min(length, f.size - position));
  const out = into && into.length >= n ? into.subarray(0, n) : new Uint8Array(n);
  let done = 0;
  try {
    while (done < n) {
      const got = readSync(f.fd, out, done, n - done, position + done);
      if (got === 0) break;
      done += got;
    }
  } catch (e) {
    throw readError(file, 'file', codeOf(e));
  }
  return done === n ? out : out.subarray(0, done);
}

export interface ReadOptions {
  /** The limit on the file's size (default: LORKD_MAX_FILE_BYTES). */
  limit?: LimitName;
  /** What the file is, for messages ("image": "FILE: cannot read image (ENOENT)"; default "file"). */
  what?: string;
}

/**
 * The bytes of regular file `file`, at most the size stated when it was opened, which must be
 * within the limit. A FIFO, device or folder is refused before it is opened.
 */
export function readRegular(file: string, o: ReadOptions = {}): Uint8Array {
  return withFile(
    file,
    (f) => {
      checkLimit(o.limit ?? 'fileBytes', f.size, `${file}: a file of ${f.size} bytes`);
      return readAt(file, f, 0, f.size);
    },
    o.what,
  );
}

/** A regular file's bytes as UTF-8 text (see readRegular). */
export function readText(file: string, o: ReadOptions = {}): string {
  const b = readRegular(file, o);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
}

/** The bytes of a data file (.npz, .npy), under LORKD_MAX_NPZ_BYTES (see readRegular). */
export function readDataFile(path: string): Uint8Array {
  return readRegular(path, { limit: 'npzBytes' });
}
