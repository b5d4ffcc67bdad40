// Ctrl-C (SIGINT) and SIGTERM: lorkd stops with one line saying where the last good checkpoint is
// and the exact command that resumes the run, and exits 130 / 143.
//
// JavaScript signal handlers run between two turns of the event loop, never inside synchronous
// code, and every lorkd file write is synchronous and atomic (src/io/atomic.ts): when the handler
// runs, no write is half done, so it can exit at once. The trainer yields to the event loop after
// every step, so a signal is acted on within one training step; in a long synchronous phase (the
// teacher-cache pass, evaluation) at its end. The handler removes itself first, so a second
// signal gets the default action and ends the process at once.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { readSafetensorsMetadata } from '../io/safetensors.js';

const runDirs = new Set<string>();

/** Remembers a run directory this process works in (RunDir.open calls it). */
export function noteRunDir(root: string): void {
  runDirs.add(root);
}

export interface Checkpoint {
  file: string;
  /** Last completed epoch, 1-based (null when the file has no epoch metadata). */
  epoch: number | null;
  /** Steps done in the epoch after it (a checkpoint written inside an epoch; 0 otherwise). */
  step?: number;
}

/** The epoch (and step inside the next one) recorded in a checkpoint's safetensors header (reads the header only). */
function checkpointEpoch(file: string): { epoch: number | null; step: number } {
  try {
    const meta = readSafetensorsMetadata(file);
    const epoch = Number(meta.epoch);
    const step = Number(meta.step ?? 0);
    return { epoch: Number.isInteger(epoch) ? epoch + 1 : null, step: Number.isInteger(step) ? step : 0 };
  } catch {
    return { epoch: null, step: 0 };
  }
}

/** The newest training checkpoint (*.ckpt.safetensors) in the run directories of this process. */
export function lastCheckpoint(): Checkpoint | null {
  let best: { file: string; mtime: number } | null = null;
  for (const root of runDirs) {
    let names: string[];
    try {
      names = readdirSync(root);
    } catch {
      continue;
    }
    for (const n of names) {
      if (!n.endsWith('.ckpt.safetensors')) continue;
      const file = path.join(root, n);
      const mtime = statSync(file).mtimeMs;
      if (!best || mtime > best.mtime) best = { file, mtime };
    }
  }
  return best && { file: best.file, ...checkpointEpoch(best.file) };
}

const quote = (a: string): string => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

/** Commands that continue a run with --resume (demo resumes by itself). */
const RESUMABLE = new Set(['foundation', 'decompose', 'run', 'compare', 'transfer']);

/** The command that continues this process's run: its own arguments, with --resume where needed. */
export function resumeCommand(argv: readonly string[] = process.argv.slice(2)): string {
  const args = [...argv];
  if (RESUMABLE.has(args[0] ?? '') && !args.includes('--resume')) args.push('--resume');
  return ['lorkd', ...args].map(quote).join(' ');
}

/** The one line printed when a signal stops the process. */
export function interruptMessage(signal: NodeJS.Signals): string {
  const cmd = process.argv[2] ?? '';
  if (runDirs.size === 0 || !(RESUMABLE.has(cmd) || cmd === 'demo')) return `lorkd: interrupted by ${signal}; nothing was left half written`;
  const c = lastCheckpoint();
  const where = c ? `last good checkpoint: ${c.file}${c.epoch !== null ? (c.step ? ` (epoch ${c.epoch + 1}, step ${c.step})` : ` (epoch ${c.epoch})`) : ''}` : 'no checkpoint was written yet';
  return `lorkd: interrupted by ${signal}; ${where}; resume with: ${resumeCommand()}`;
}

export const SIGNAL_EXIT_CODES: Record<'SIGINT' | 'SIGTERM', number> = { SIGINT: 130, SIGTERM: 143 };

let installed = false;

/** Installs the SIGINT/SIGTERM handlers (once per process). */
export function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  const handler = (signal: 'SIGINT' | 'SIGTERM'): void => {
    // A second signal gets the default action (the process ends at once).
    process.removeListener('SIGINT', onInt);
    process.removeListener('SIGTERM', onTerm);
    process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}${interruptMessage(signal)}\n`);
    process.exit(SIGNAL_EXIT_CODES[signal]);
  };
  const onInt = (): void => handler('SIGINT');
  const onTerm = (): void => handler('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
}
