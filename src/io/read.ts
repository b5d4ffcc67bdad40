// Reading a whole data file into memory, with its size checked against the stated limit first.
import { readFileSync, statSync } from 'node:fs';
import { UserError } from '../tensor/errors.js';
import { checkLimit } from './limits.js';

/**
 * The bytes of `path`, refusing a file larger than LORKD_MAX_NPZ_BYTES before reading it.
 * Errors (UserError): "<path>: cannot read file (ENOENT)", or the limit.
 */
export function readDataFile(path: string): Uint8Array {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (e) {
    throw new UserError(`${path}: cannot read file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  checkLimit('npzBytes', size, `${path}: a file of ${size} bytes`);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UserError(`${path}: cannot read file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}
