// Numeric assertions shared by the tensor tests.
import assert from 'node:assert/strict';
import { Tensor, memory } from '../../src/tensor/index.js';

/** Runs `step` once (warming caches and lazy packings), then `times` more, and asserts no tensor or tensor byte was left behind. */
export function assertMemoryFlat(step: () => void, times: number): void {
  step();
  const before = memory();
  for (let i = 0; i < times; i++) step();
  const after = memory();
  assert.equal(after.liveTensors, before.liveTensors, 'live tensors grew');
  assert.equal(after.externalBytes, before.externalBytes, 'tensor bytes grew');
}

export interface Tolerance {
  atol?: number;
  rtol?: number;
}

function toNums(x: Tensor | ArrayLike<number> | number[]): number[] {
  if (x instanceof Tensor) return x.toNumbers();
  return Array.from(x as ArrayLike<number>);
}

/**
 * Asserts |a - e| <= atol + rtol |e| elementwise (NaN matches NaN; infinities must be equal).
 * A Tensor's shape is checked too when `shape` is given.
 */
export function assertClose(
  actual: Tensor | ArrayLike<number>,
  expected: ArrayLike<number> | number[],
  tol: Tolerance = {},
  what = 'value',
): void {
  const a = toNums(actual);
  const e = Array.from(expected);
  assert.equal(a.length, e.length, `${what}: length ${a.length} != expected ${e.length}`);
  const atol = tol.atol ?? 1e-6;
  const rtol = tol.rtol ?? 1e-5;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = e[i]!;
    if (Number.isNaN(y) && Number.isNaN(x)) continue;
    if (!Number.isFinite(y) || !Number.isFinite(x)) {
      assert.equal(x, y, `${what}[${i}]: ${x} != ${y}`);
      continue;
    }
    assert.ok(Math.abs(x - y) <= atol + rtol * Math.abs(y), `${what}[${i}]: got ${x}, expected ${y} (atol ${atol}, rtol ${rtol})`);
  }
}

/** Asserts a tensor's shape and its values (close, see assertClose). */
export function assertTensor(t: Tensor, shape: number[], expected: ArrayLike<number>, tol: Tolerance = {}, what = 'tensor'): void {
  assert.deepEqual(t.shape, shape, `${what}: shape [${t.shape}] != [${shape}]`);
  assertClose(t, expected, tol, what);
}

/** Asserts exact equality of values and shape (integer/bool results). */
export function assertExact(t: Tensor, shape: number[], expected: number[], what = 'tensor'): void {
  assert.deepEqual(t.shape, shape, `${what}: shape [${t.shape}] != [${shape}]`);
  assert.deepEqual(t.toNumbers(), expected, what);
}

/** Hex of bytes, for bit-exact comparisons with readable failures. */
export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}
