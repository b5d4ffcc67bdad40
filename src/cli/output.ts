// Shared CLI output: tables for people, JSON for machines, one-line errors, option parsers with
// stated ranges, and the signal handling of every command.
import { UserError, TorchError } from '../tensor/errors.js';
import { LIMITS, limit, type LimitName } from '../io/limits.js';
import { installSignalHandlers } from '../experiments/signals.js';
import { lockRunDirs } from '../experiments/run-dir.js';

/** Formats rows as an aligned text table. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** Prints a result: JSON on one line with --json, the human form otherwise. */
export function emit(json: boolean, value: unknown, human: () => string): void {
  console.log(json ? JSON.stringify(value) : human());
}

/** The one line printed for an error the user can act on, or null for a bug (stack trace). */
export function userMessage(e: unknown): string | null {
  if (e instanceof UserError || e instanceof TorchError) return e.message.split('\n')[0]!;
  // Out of memory inside libtorch or V8's typed-array allocation: say so instead of a trace.
  if (e instanceof RangeError && /Array buffer allocation failed|Invalid typed array length|Invalid array length/.test(e.message)) {
    return `out of memory (${e.message}); see docs/LIMITS.md`;
  }
  return null;
}

/**
 * Runs a command body: user mistakes print one line and exit 2, nothing else is swallowed.
 * SIGINT/SIGTERM print where the last checkpoint is and exit 130/143 (src/experiments/signals.ts);
 * the run directories the command opens are locked until it exits (src/experiments/run-dir.ts).
 */
export async function run(body: () => Promise<void> | void): Promise<void> {
  installSignalHandlers();
  lockRunDirs();
  try {
    await body();
  } catch (e) {
    const msg = userMessage(e);
    if (msg !== null) {
      console.error(`lorkd: ${msg}`);
      process.exit(2);
    }
    throw e;
  }
}

interface Range {
  min?: number;
  max?: number;
  /** The bound `min` itself is excluded (x > min). */
  minExclusive?: boolean;
  /** The bound `max` itself is excluded (x < max). */
  maxExclusive?: boolean;
  /** Upper bound from a stated limit (src/io/limits.ts). */
  limit?: LimitName;
}

/**
 * The stated range of every numeric option, by name. The option parsers look their option up
 * here, so each command gets the same bounds and the same one-line message.
 */
export const OPTION_RANGES: Record<string, Range> = {
  seed: { min: 0, max: Number.MAX_SAFE_INTEGER },
  epochs: { min: 0, max: 100_000 },
  'foundation-epochs': { min: 0, max: 100_000 },
  patience: { min: 1, max: 100_000 },
  rank: { min: 1, limit: 'rank' },
  // `lorkd params --tasks T` counts arithmetically; a suite's task count is checked where it is built.
  tasks: { min: 1, max: 10_000_000 },
  input: { min: 8, limit: 'input' },
  'foundation-input': { min: 8, limit: 'input' },
  'teacher-input': { min: 8, limit: 'input' },
  batch: { min: 1, limit: 'batch' },
  'batch-size': { min: 1, limit: 'batch' },
  classes: { min: 2, max: 100_000 },
  limit: { min: 1 },
  lr: { min: 0, minExclusive: true },
  momentum: { min: 0, max: 1, maxExclusive: true },
  wd: { min: 0, max: 1e3 },
  alpha: { min: 0, minExclusive: true, max: 1e6 },
  beta: { min: 0, max: 1e6 },
  'lora-alpha': { min: 0, minExclusive: true, max: 1e6 },
  // lorkd serve
  port: { min: 0, max: 65535 },
  'max-batch': { min: 1, limit: 'batch' },
  'max-queue': { min: 1, max: 1_000_000 },
  'max-wait-ms': { min: 0, max: 60_000 },
  'max-body-bytes': { min: 1, max: 2 ** 30 },
  'max-pixels': { min: 1, max: Number.MAX_SAFE_INTEGER },
  'decode-threads': { min: 1, max: 64 },
  'drain-timeout-ms': { min: 0, max: 3_600_000 },
  // lorkd pack
  size: { min: 1, max: 65535 },
  quality: { min: 1, max: 100 },
  'shard-mib': { min: 0, minExclusive: true, max: 4095 },
  threads: { min: 1, max: 1024 },
};

function rangeOf(name: string, min: number | undefined): Required<Pick<Range, 'min' | 'max'>> & Range {
  const r = OPTION_RANGES[name] ?? {};
  const lo = Math.max(min ?? -Infinity, r.min ?? -Infinity);
  const hi = r.limit ? limit(r.limit) : (r.max ?? Infinity);
  return { ...r, min: lo, max: hi };
}

function describe(r: Range & { min: number; max: number }, integer: boolean): string {
  const kind = integer ? 'an integer' : 'a number';
  const lo = r.min === -Infinity ? '' : `${r.minExclusive ? '>' : '>='} ${r.min}`;
  const hi = r.max === Infinity ? '' : `${r.maxExclusive ? '<' : '<='} ${r.max}`;
  const hint = r.limit ? ` (set ${LIMITS[r.limit].env} to raise the maximum)` : '';
  return `${kind}${lo || hi ? ' ' : ''}${[lo, hi].filter(Boolean).join(' and ')}${hint}`;
}

function inRange(n: number, r: Range & { min: number; max: number }): boolean {
  return (r.minExclusive ? n > r.min : n >= r.min) && (r.maxExclusive ? n < r.max : n <= r.max);
}

/** Parser of an integer option; its range is `min` (if given) and OPTION_RANGES[name]. */
export function intOption(name: string, min?: number): (v: string) => number {
  return (v: string) => {
    const r = rangeOf(name, min);
    const n = v.trim() === '' ? NaN : Number(v);
    if (!Number.isSafeInteger(n) || !inRange(n, r)) throw new UserError(`--${name} must be ${describe(r, true)}, got "${v}"`);
    return n;
  };
}

/** Parser of a number option; its range is OPTION_RANGES[name] (any finite number if absent). */
export function numberOption(name: string): (v: string) => number {
  return (v: string) => {
    const r = rangeOf(name, undefined);
    const n = v.trim() === '' ? NaN : Number(v);
    if (!Number.isFinite(n) || !inRange(n, r)) throw new UserError(`--${name} must be ${describe(r, false)}, got "${v}"`);
    return n;
  };
}
