// The one way lorkd writes a file: the bytes go to a temporary file in the same folder, which is
// synced and renamed over the target, so a reader (or a killed run) only ever sees the old file or
// the complete new one. Any failure (full disk, read-only file system, a folder in the way, no
// permission) removes the temporary file and becomes one UserError naming the file and the cause.
import { closeSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { UserError } from '../tensor/errors.js';

const CAUSES: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large for the file system',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'it is a folder',
  ENOTDIR: 'a parent path is not a folder',
  ENOENT: 'its folder does not exist',
  EIO: 'input/output error',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'name too long',
};

/** "no space left on device (ENOSPC)" for a Node file-system error, its message otherwise. */
export function causeOf(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (code && CAUSES[code]) return `${CAUSES[code]} (${code})`;
  return code ?? (e as Error)?.message ?? String(e);
}

/** A one-line UserError for a failed file operation: "FILE: cannot write: no space left on device (ENOSPC)". */
export function fileError(file: string, e: unknown, verb = 'write'): UserError {
  if (e instanceof UserError) return e;
  return new UserError(`${file}: cannot ${verb}: ${causeOf(e)}`);
}

/** Temporary files: `.<name>.<pid>.<hex>.tmp` beside their target. */
const TEMP = /^\..+\.(\d+)\.[0-9a-f]+\.tmp$/;

function tempName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** The pid that wrote temporary file `name`, or null when `name` is not one. */
export function tempFilePid(name: string): number | null {
  const m = TEMP.exec(name);
  return m ? Number(m[1]) : null;
}

export type FileData = string | Uint8Array | readonly Uint8Array[];

/**
 * Writes `data` (a string as UTF-8, bytes, or chunks written in order) to `file` atomically.
 * Throws a UserError naming the file and the cause; the target is then unchanged.
 */
export function writeFileAtomic(file: string, data: FileData): void {
  let isDir = false;
  try {
    isDir = statSync(file).isDirectory();
  } catch {
    // does not exist yet
  }
  if (isDir) throw new UserError(`${file}: cannot write: it is a folder (EISDIR)`);
  const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
  const tmp = tempName(file);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'wx');
    for (const c of chunks) {
      let done = 0;
      while (done < c.length) done += writeSync(fd, c, done, c.length - done);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, file);
  } catch (e) {
    if (fd !== null) {
      try {
        closeSync(fd);
      } catch {
        // already failing; the write error is the one to report
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      // never created, or already renamed
    }
    throw fileError(file, e);
  }
  syncFolder(path.dirname(file));
}

/** Makes a rename durable (best effort: some file systems refuse to sync a folder). */
function syncFolder(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // not supported here; the rename itself is atomic
  }
}

/** Whether process `pid` exists (EPERM: it exists, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed process stays signalable as a zombie until its parent (or init, for an orphan)
  // reaps it, which can take a while on a loaded machine; it holds nothing, so it counts as dead.
  return !zombie(pid);
}

/** Whether Linux reports `pid` as a zombie or dead entry (state Z or X in /proc/<pid>/stat). */
function zombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return false; // no /proc (another OS), or gone since the signal: kill() answered
  }
}

/**
 * Removes the temporary files that dead processes (killed runs) left in `dir` and, one level
 * down, in its subfolders. Returns the removed paths.
 */
export function removeStaleTemps(dir: string): string[] {
  const removed: string[] = [];
  const sweep = (d: string, depth: number): void => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (depth > 0) sweep(p, depth - 1);
        continue;
      }
      const pid = tempFilePid(e.name);
      if (pid === null || pid === process.pid || pidAlive(pid)) continue;
      try {
        unlinkSync(p);
        removed.push(p);
      } catch {
        // gone already
      }
    }
  };
  sweep(dir, 1);
  return removed;
}
