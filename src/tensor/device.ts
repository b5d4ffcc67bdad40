// Devices as the CLI and the library name them: 'cpu', 'cuda', 'cuda:N' (PyTorch's strings).
// parseDevice checks the text; checkDevice checks that this build and machine can run it.
import { N } from './ops-native.js';
import { UserError } from './errors.js';

export type DeviceType = 'cpu' | 'cuda';

const FORM = /^(cpu|cuda)(?::(\d+))?$/;

/**
 * A device string from the user (`--device`, LORKD_DEVICE): 'cpu', 'cuda' or 'cuda:N';
 * undefined or empty is 'cpu'. Anything else is a UserError that lists the forms.
 */
export function parseDevice(s: string | undefined): string {
  if (s === undefined || s.trim() === '') return 'cpu';
  const t = s.trim().toLowerCase();
  const m = FORM.exec(t);
  if (!m || (m[1] === 'cpu' && m[2] !== undefined)) throw new UserError(`device "${s}": expected cpu, cuda or cuda:N (N a GPU index)`);
  return t;
}

/** 'cpu' or 'cuda' of a device string ('cuda:1' -> 'cuda'). */
export function deviceType(d: string): DeviceType {
  return d.startsWith('cuda') ? 'cuda' : 'cpu';
}

/** The GPU index of a device string ('cuda' -> 0, 'cuda:2' -> 2); null for the CPU. */
export function deviceIndex(d: string): number | null {
  if (deviceType(d) === 'cpu') return null;
  const i = d.indexOf(':');
  return i < 0 ? 0 : Number(d.slice(i + 1));
}

/** Whether this lorkd build (its libtorch) and this machine can run CUDA. */
export function cudaAvailable(): boolean {
  return N.cudaIsAvailable() as boolean;
}

/** GPUs visible to this process (0 without CUDA). */
export function cudaDeviceCount(): number {
  return cudaAvailable() ? (N.cudaDeviceCount() as number) : 0;
}

/**
 * The device if it can run here, else a one-line UserError: CUDA asked for on a build against
 * a CPU libtorch (or a machine without a GPU), or a GPU index beyond those visible.
 */
export function checkDevice(d: string): string {
  const dev = parseDevice(d);
  if (deviceType(dev) === 'cpu') return dev;
  if (!cudaAvailable()) {
    throw new UserError(
      `device ${dev}: this lorkd build has no CUDA (or no GPU is visible); build against a CUDA libtorch: LIBTORCH=/path/to/libtorch-or-pip-torch ./bootstrap.sh`,
    );
  }
  const n = cudaDeviceCount();
  const i = deviceIndex(dev)!;
  if (i >= n) throw new UserError(`device ${dev}: only ${n} GPU${n === 1 ? '' : 's'} visible (cuda:0${n > 1 ? `..cuda:${n - 1}` : ''})`);
  return dev;
}

/** Waits for the device's queued work (CUDA); a no-op on the CPU. For timings. */
export function synchronize(d: string): void {
  if (deviceType(d) === 'cuda') N.cudaSynchronize(deviceIndex(d));
}
