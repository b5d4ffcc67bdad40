// Debian's PyTorch (/usr/bin/python3) as an independent reference; tests skip when it is missing.
import { spawnSync } from 'node:child_process';

export const PYTHON = '/usr/bin/python3';

let torchAvailable: boolean | undefined;

/** Whether /usr/bin/python3 can import torch (checked once per process). */
export function hasTorch(): boolean {
  if (torchAvailable === undefined) {
    const r = spawnSync(PYTHON, ['-c', 'import torch'], { timeout: 120_000, stdio: 'ignore' });
    torchAvailable = r.status === 0;
  }
  return torchAvailable;
}

/** The skip reason for node:test when torch is missing, or false. */
export function skipWithoutTorch(): string | false {
  return hasTorch() ? false : `${PYTHON} cannot import torch`;
}

/** Runs a Python program with arguments and returns its stdout; throws with stderr on failure. */
export function runPython(code: string, args: string[] = []): string {
  const r = spawnSync(PYTHON, ['-c', code, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  if (r.status !== 0) throw new Error(`python failed (status ${r.status}): ${r.stderr}`);
  return r.stdout;
}
