// Mixed precision as a value passed in (torch.autocast): autocast(device, precision, fn) runs fn
// with libtorch's autocast on for that device type and dtype, and restores the state it found,
// also when fn throws. Nothing is left switched on between calls.
import { N } from './ops-native.js';
import { UserError } from './errors.js';
import { deviceType, parseDevice } from './device.js';
import type { DType } from './dtype.js';

export type Precision = 'fp32' | 'bf16' | 'fp16';
export const PRECISIONS: readonly Precision[] = ['fp32', 'bf16', 'fp16'];

/** The autocast dtype of a precision (fp32: none). */
export function precisionDtype(p: Precision): DType | null {
  return p === 'bf16' ? 'bfloat16' : p === 'fp16' ? 'float16' : null;
}

/** `--precision` / LORKD_PRECISION text: fp32 (default when undefined or empty), bf16 or fp16. */
export function parsePrecision(s: string | undefined): Precision {
  if (s === undefined || s.trim() === '') return 'fp32';
  const t = s.trim().toLowerCase();
  if (!(PRECISIONS as readonly string[]).includes(t)) throw new UserError(`precision "${s}": expected ${PRECISIONS.join(', ')}`);
  return t as Precision;
}

/**
 * Refuses a device/precision pair autocast cannot run, in one line: libtorch's CPU autocast
 * runs bf16 only (1.13: "AutocastCPU only support Bfloat16").
 */
export function checkPrecision(device: string, precision: Precision): void {
  if (precision === 'fp16' && deviceType(parseDevice(device)) === 'cpu') {
    throw new UserError('precision fp16 runs on CUDA only (CPU autocast supports bf16): use --precision bf16 on the CPU, or --device cuda');
  }
}

/**
 * fn() with autocast on for `device`'s type in `precision` (fp32: fn() unchanged). Ops on the
 * autocast list (convolutions, matmuls, linear) run in bf16/fp16; reductions and losses stay in
 * float32, as in PyTorch. Nested calls are allowed; the weight-cast cache is cleared when the
 * outermost one ends.
 */
export function autocast<R>(device: string, precision: Precision, fn: () => R): R {
  const dtype = precisionDtype(precision);
  if (dtype === null) return fn();
  checkPrecision(device, precision);
  const type = deviceType(parseDevice(device));
  const [wasOn, wasDtype] = N.autocastState(type) as [boolean, DType];
  N.setAutocast(type, true, dtype);
  N.autocastIncrementNesting();
  try {
    return fn();
  } finally {
    if ((N.autocastDecrementNesting() as number) === 0) N.autocastClearCache();
    N.setAutocast(type, wasOn, wasDtype);
  }
}

/** Whether autocast is on for a device type now, and its dtype (for tests and diagnostics). */
export function autocastState(type: 'cpu' | 'cuda'): { enabled: boolean; dtype: DType } {
  const [enabled, dtype] = N.autocastState(type) as [boolean, DType];
  return { enabled, dtype };
}
