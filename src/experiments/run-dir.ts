// A run directory: checkpoints, caches, results. Files are written atomically (temp + rename),
// so a killed run never leaves a half-written file, and an existing run is never overwritten
// unless the caller resumes it.
import { mkdirSync, existsSync, readdirSync, writeFileSync, renameSync, readFileSync, rmSync, accessSync, constants } from 'node:fs';
import path from 'node:path';
import { UserError } from '../tensor/errors.js';

export class RunDir {
  readonly root: string;

  private constructor(root: string) {
    this.root = root;
  }

  /**
   * Opens `dir` for a new run (it must not exist or be empty) or, with resume, for continuing the
   * run in it. Checks that it is writable, with a one-line error otherwise.
   */
  static open(dir: string, o: { resume?: boolean; marker: string }): RunDir {
    const root = path.resolve(dir);
    if (existsSync(root)) {
      const entries = readdirSync(root).filter((e) => !e.startsWith('.'));
      if (entries.length && !o.resume && entries.includes(o.marker)) {
        throw new UserError(`run directory ${root} already holds a run (${o.marker}); pass --resume to continue it or choose another --out`);
      }
    } else {
      try {
        mkdirSync(root, { recursive: true });
      } catch (e) {
        throw new UserError(`cannot create run directory ${root}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
    try {
      accessSync(root, constants.W_OK);
      const probe = path.join(root, `.write-probe-${process.pid}`);
      writeFileSync(probe, '');
      rmSync(probe);
    } catch (e) {
      throw new UserError(`run directory ${root} is not writable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    return new RunDir(root);
  }

  file(name: string): string {
    return path.join(this.root, name);
  }
  has(name: string): boolean {
    return existsSync(this.file(name));
  }

  /** Writes a file atomically. */
  write(name: string, data: string | Uint8Array): string {
    const target = this.file(name);
    const tmp = `${target}.tmp-${process.pid}`;
    writeFileSync(tmp, data);
    renameSync(tmp, target);
    return target;
  }
  writeJson(name: string, value: unknown): string {
    return this.write(name, JSON.stringify(value, null, 2) + '\n');
  }
  readJson<T>(name: string): T {
    return JSON.parse(readFileSync(this.file(name), 'utf8')) as T;
  }
}
