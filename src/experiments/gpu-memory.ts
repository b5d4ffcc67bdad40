// A GPU's total memory, for the memory estimate and the teacher cache's placement: nvidia-smi's
// answer (it is on every machine with NVIDIA's driver), read once per device; null where it does
// not answer (no driver, another vendor). LORKD_GPU_MEMORY (bytes) overrides it.
import { spawnSync } from 'node:child_process';
import { deviceIndex } from '../tensor/index.js';

const known = new Map<string, number | null>();

export function gpuMemoryBytes(device: string): number | null {
  const given = Number(process.env.LORKD_GPU_MEMORY ?? '');
  if (given > 0) return given;
  if (!known.has(device)) {
    const r = spawnSync('nvidia-smi', ['--query-gpu=memory.total', '--format=csv,noheader,nounits', '-i', String(deviceIndex(device) ?? 0)], { encoding: 'utf8', timeout: 10_000 });
    const mib = Number((r.stdout ?? '').trim().split('\n')[0]);
    known.set(device, r.status === 0 && mib > 0 ? mib * 2 ** 20 : null);
  }
  return known.get(device)!;
}
