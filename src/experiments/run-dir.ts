// A run directory: checkpoints, caches, results. One run at a time holds it (a lock file with the
// pid and start time, released on exit; a lock left by a dead process is taken over). Files are
// written atomically (src/io/atomic.ts), a folder holding any file the command would write is an
// existing run that is never overwritten without --resume, and temporary files left by killed
// runs are removed when a run opens the folder.
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../tensor/errors.js';
import { readText } from '../io/read.js';
import { causeOf, fileError, pidAlive, removeStaleTemps, writeFileAtomic } from '../io/atomic.js';
import { noteRunDir } from './signals.js';

/** The lock file's name inside a run directory. */
export const LOCK_FILE = '.lorkd.lock';

interface LockInfo {
  pid: number;
  /** Start of the process in clock ticks since boot (Linux /proc), to tell a reused pid apart. */
  procStart: number | null;
  started: string;
  command: string;
}

/** Start time of process `pid` (field 22 of /proc/<pid>/stat), or null where /proc is absent. */
function procStart(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]);
  } catch {
    return null;
  }
}

function alive(lock: LockInfo): boolean {
  if (!pidAlive(lock.pid)) return false;
  const now = procStart(lock.pid);
  return lock.procStart === null || now === null || now === lock.procStart;
}

function readLock(file: string): LockInfo | null {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as LockInfo;
    return Number.isInteger(v.pid) ? v : null;
  } catch {
    return null;
  }
}

const held = new Set<string>();
let exitHook = false;
let locking = false;

/**
 * Makes this process lock the run directories it opens, until it exits (the CLI does, for every
 * command). A library caller that trains in-process can call it too; without it, RunDir.open
 * takes no lock, so a long-lived process (a test runner, a server) never holds folders it has
 * finished with.
 */
export function lockRunDirs(): void {
  locking = true;
}

function releaseAll(): void {
  for (const root of held) {
    const file = path.join(root, LOCK_FILE);
    if (readLock(file)?.pid === process.pid) {
      try {
        unlinkSync(file);
      } catch {
        // already gone
      }
    }
  }
  held.clear();
}

/** Takes the run directory's lock for this process (re-entrant), or throws naming the holder. */
function acquire(root: string): void {
  if (held.has(root)) return;
  const file = path.join(root, LOCK_FILE);
  const info: LockInfo = { pid: process.pid, procStart: procStart(process.pid), started: new Date().toISOString(), command: process.argv.slice(2).join(' ') };
  const tmp = `${file}.${process.pid}`;
  for (let attempt = 0; ; attempt++) {
    try {
      // Written whole, then linked into place: the lock appears atomically with its contents.
      writeFileSync(tmp, JSON.stringify(info) + '\n');
      try {
        linkSync(tmp, file);
      } finally {
        rmSync(tmp, { force: true });
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new UserError(`run directory ${root} is not writable: ${causeOf(e)}`);
      const other = readLock(file);
      if (other && other.pid === process.pid) break;
      if (other && alive(other)) {
        throw new UserError(`run directory ${root} is in use by another lorkd run (pid ${other.pid}, started ${other.started}); wait for it to finish or choose another --out`);
      }
      if (attempt > 0) throw new UserError(`cannot lock run directory ${root}: ${file} keeps reappearing`);
      // A lock of a dead process (or an unreadable one): take it over.
      rmSync(file, { force: true });
    }
  }
  held.add(root);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', releaseAll);
  }
}

/**
 * The real cause of a failed recursive mkdir: Node reports ENOENT for a read-only parent, so when
 * the parent exists the plain mkdir is retried for its error (EROFS, EACCES, ...).
 */
function mkdirCause(root: string, e: unknown): unknown {
  if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || !existsSync(path.dirname(root))) return e;
  try {
    mkdirSync(root);
    return e;
  } catch (again) {
    return again;
  }
}

/** Names (or `prefix*` patterns) of `outputs` that exist in `root`. */
function existingOutputs(root: string, entries: string[], outputs: readonly string[]): string[] {
  return entries.filter((e) => outputs.some((o) => (o.endsWith('*') ? e.startsWith(o.slice(0, -1)) : e === o))).sort();
}

export interface RunDirOptions {
  /** Continue the run in the folder (its files may exist). */
  resume?: boolean;
  /** The stage's checkpoint file (counts as an output). */
  marker: string;
  /**
   * Every file the command would write in the folder (`name*` matches a prefix). Without
   * resume, a folder holding any of them is refused. Default: the marker alone.
   */
  outputs?: readonly string[];
}

export class RunDir {
  readonly root: string;
  /** Temporary files of killed runs removed when the folder was opened. */
  readonly removedTemps: string[];

  private constructor(root: string, removedTemps: string[]) {
    this.root = root;
    this.removedTemps = removedTemps;
  }

  /**
   * Opens `dir` for a new run (it must hold none of the files the run would write) or, with
   * resume, for continuing the run in it; takes its lock for the rest of the process, checks that
   * it is writable and removes temporary files left by killed runs. One-line UserErrors.
   */
  static open(dir: string, o: RunDirOptions): RunDir {
    const root = path.resolve(dir);
    if (existsSync(root)) {
      if (!statSync(root).isDirectory()) throw new UserError(`run directory ${root} is a file, not a folder; choose another --out`);
      const found = existingOutputs(root, readdirSync(root), [o.marker, ...(o.outputs ?? [])]);
      if (found.length && !o.resume) {
        throw new UserError(`run directory ${root} already holds a run (${found.join(', ')}); pass --resume to continue it or choose another --out`);
      }
    } else {
      try {
        mkdirSync(root, { recursive: true });
      } catch (e) {
        throw new UserError(`cannot create run directory ${root}: ${causeOf(mkdirCause(root, e))}`);
      }
    }
    if (locking) acquire(root);
    noteRunDir(root);
    try {
      const probe = path.join(root, `.write-probe-${process.pid}`);
      writeFileSync(probe, '');
      rmSync(probe);
    } catch (e) {
      throw new UserError(`run directory ${root} is not writable: ${causeOf(e)}`);
    }
    return new RunDir(root, removeStaleTemps(root));
  }

  file(name: string): string {
    return path.join(this.root, name);
  }
  has(name: string): boolean {
    return existsSync(this.file(name));
  }

  /** Writes a file atomically; a failure is a UserError naming the file and the cause. */
  write(name: string, data: string | Uint8Array): string {
    const target = this.file(name);
    writeFileAtomic(target, data);
    return target;
  }
  writeJson(name: string, value: unknown): string {
    return this.write(name, JSON.stringify(value, null, 2) + '\n');
  }
  readJson<T>(name: string): T {
    const file = this.file(name);
    const text = readText(file);
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new UserError(`${file}: not valid JSON (${(e as Error).message})`);
    }
  }
}
