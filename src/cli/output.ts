// Shared CLI output: tables for people, JSON for machines, one-line errors.
import { UserError, TorchError } from '../tensor/errors.js';

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

/** Runs a command body; user mistakes print one line and exit 2, nothing else is swallowed. */
export async function run(body: () => Promise<void> | void): Promise<void> {
  try {
    await body();
  } catch (e) {
    if (e instanceof UserError || e instanceof TorchError) {
      console.error(`lorkd: ${e.message.split('\n')[0]}`);
      process.exit(2);
    }
    throw e;
  }
}

export function intOption(name: string, min = 1): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UserError(`--${name} must be an integer >= ${min}, got "${v}"`);
    return n;
  };
}
export function numberOption(name: string): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new UserError(`--${name} must be a number, got "${v}"`);
    return n;
  };
}
