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

/**
 * Python source of `load(path)`: a safetensors file as {name: torch tensor}, read by hand (the
 * safetensors package is not installed). Needs `import json, struct, torch` before it.
 */
export const PY_LOAD_SAFETENSORS = `
DT = {'F32': torch.float32, 'F64': torch.float64, 'I64': torch.int64}
def load(p):
    b = open(p, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    out = {}
    for k, v in json.loads(b[8:8 + n]).items():
        if k == '__metadata__':
            continue
        s, e = v['data_offsets']
        out[k] = torch.frombuffer(bytearray(b[8 + n + s:8 + n + e]), dtype=DT[v['dtype']]).reshape(v['shape'])
    return out
`;
