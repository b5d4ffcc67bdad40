// Stated resource limits: every input that could claim more than it holds (an image header, a zip
// directory, an npy header, a --rank or --tasks option, a run's memory) is checked against one of
// these before any work is done. Each can be raised (or lowered) by an environment variable;
// docs/LIMITS.md lists them.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { UserError } from '../tensor/errors.js';

export interface Limit {
  /** Environment variable that overrides the default. */
  env: string;
  /** What is limited, for messages ("pixels per image"). */
  what: string;
  default: () => number;
  /** Accepts byte sizes with a K/M/G/T suffix (powers of 1024). */
  bytes?: boolean;
  /** Accepts a positive decimal number (seconds), not only an integer. */
  decimal?: boolean;
}

const GiB = 1024 ** 3;

/** The machine's memory: the cgroup limit when one is set and smaller, else os.totalmem(). */
export function machineMemory(): number {
  const total = os.totalmem();
  for (const f of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const v = Number(readFileSync(f, 'utf8').trim());
      if (Number.isFinite(v) && v > 0 && v < total) return v;
    } catch {
      // no such cgroup file (or "max")
    }
  }
  return total;
}

export const LIMITS = {
  imagePixels: { env: 'LORKD_MAX_IMAGE_PIXELS', what: 'pixels per image', default: () => 8192 * 8192 },
  npzBytes: { env: 'LORKD_MAX_NPZ_BYTES', what: 'bytes unpacked from one .npz', default: () => Math.min(8 * GiB, Math.floor(machineMemory() / 2)), bytes: true },
  fileBytes: { env: 'LORKD_MAX_FILE_BYTES', what: 'per file read', default: () => Math.min(8 * GiB, Math.floor(machineMemory() / 2)), bytes: true },
  memory: { env: 'LORKD_MEMORY_LIMIT', what: 'bytes of memory for one run', default: () => machineMemory(), bytes: true },
  rank: { env: 'LORKD_MAX_RANK', what: 'expert rank', default: () => 1024 },
  tasks: { env: 'LORKD_MAX_TASKS', what: 'tasks', default: () => 1000 },
  input: { env: 'LORKD_MAX_INPUT', what: 'input side in pixels', default: () => 1024 },
  batch: { env: 'LORKD_MAX_BATCH', what: 'images per batch', default: () => 65536 },
  tensorBytes: { env: 'LORKD_MAX_TENSOR_BYTES', what: 'per tensor a model graph states', default: () => GiB, bytes: true },
  decodeHeap: { env: 'LORKD_DECODE_HEAP', what: 'of JavaScript heap per image decode (serve)', default: () => GiB, bytes: true },
  decodeSeconds: { env: 'LORKD_DECODE_SECONDS', what: 'seconds per image decode (serve)', default: () => 60, decimal: true },
} as const satisfies Record<string, Limit>;

export type LimitName = keyof typeof LIMITS;

const SUFFIX: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: GiB, T: 1024 ** 4 };

/** Parses "123", "1.5G", "512M" (bytes), a plain integer, or a decimal number where the limit takes one. */
function parseLimit(l: Limit, text: string): number {
  if (l.decimal) {
    const v = /^\s*\d+(\.\d+)?\s*$/.test(text) ? Number(text) : NaN;
    if (!(v > 0 && Number.isFinite(v))) throw new UserError(`${l.env}="${text}" is not a positive number`);
    return v;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$/i.exec(text);
  const v = m && (l.bytes || !m[2]) ? Math.floor(Number(m[1]) * SUFFIX[m[2]!.toUpperCase()]!) : NaN;
  if (!(Number.isSafeInteger(v) && v >= 1)) {
    throw new UserError(`${l.env}="${text}" is not a positive ${l.bytes ? 'size (e.g. 4G, 512M)' : 'integer'}`);
  }
  return v;
}

/** The current value of a limit (its environment variable, else the default). */
export function limit(name: LimitName): number {
  const l: Limit = LIMITS[name];
  const text = process.env[l.env];
  return text === undefined || text === '' ? l.default() : parseLimit(l, text);
}

/** "1.50 GiB", "512 MiB", "12 KiB", "100 B". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let u = 0;
  let v = n;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : 2)} ${units[u]}`;
}

/** How to raise a limit, for the end of a message: "(limit 67108864; raise it with LORKD_MAX_IMAGE_PIXELS)". */
export function limitHint(name: LimitName): string {
  const l: Limit = LIMITS[name];
  const v = limit(name);
  return `limit ${l.bytes ? formatBytes(v) : v} ${l.what}; set ${l.env} to change it`;
}

/** Throws a UserError `${subject} ${claim}, over the limit (...)` when `value` exceeds the limit. */
export function checkLimit(name: LimitName, value: number, subject: string): void {
  if (value > limit(name)) throw new UserError(`${subject}: over the limit (${limitHint(name)})`);
}
