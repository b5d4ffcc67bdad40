// The bounds of the few-rows convolution (native/src/few-rows-conv.cc): a dense convolution whose
// output has at most `maxRows` pixels (batch x height x width) and whose weight has at least
// `minWeight` values runs as one pass over its packed weight instead of oneDNN's convolution. At
// batch 1 the deep layers of a ResNet are bound by reading their weights, and this pass reads
// them 1.5-2x faster (issue 22). Used by the ResNet trunk (InferenceResNetTrunk).
import { N } from '../tensor/ops-native.js';
import { UserError } from '../tensor/errors.js';

export interface FewRowsLimits {
  /** Most output pixels a convolution may have to take the few-rows pass (default 16). */
  maxRows: number;
  /** Fewest weight values (kh x kw x Cin x Cout) it must have (default 2^18, 1 MB of float32). */
  minWeight: number;
}

/**
 * Sets the bounds where given and returns those in force before the call, so that a caller can
 * put them back: `const before = fewRowsLimits({ maxRows: 0 }); ...; fewRowsLimits(before)`.
 * `maxRows: 0` turns the pass off; `{ maxRows: Infinity, minWeight: 0 }` sends every eligible
 * convolution through it.
 */
export function fewRowsLimits(set: Partial<FewRowsLimits> = {}): FewRowsLimits {
  for (const [k, v] of Object.entries(set)) {
    if (v !== undefined && !(typeof v === 'number' && v >= 0 && (Number.isInteger(v) || v === Infinity))) {
      throw new UserError(`fewRowsLimits: ${k} must be a whole number >= 0, got ${v}`);
    }
  }
  const big = (v: number | undefined) => (v === Infinity ? Number.MAX_SAFE_INTEGER : v);
  const [maxRows, minWeight] = N.fewRowsLimits(big(set.maxRows), big(set.minWeight)) as [number, number];
  return { maxRows, minWeight };
}

/** The convolutions run through the few-rows pass since the library was loaded. */
export function fewRowsRuns(): number {
  return N.fewRowsRuns() as number;
}

export type FewRowsIsa = 'avx512' | 'avx2' | 'baseline';

/**
 * The instruction set the few-rows loops used before the call; given one, they use at most that one
 * from then on (so that each loop can be checked on one CPU). One wider than the CPU's runs the CPU's.
 */
export function fewRowsIsa(set?: FewRowsIsa): FewRowsIsa {
  return N.fewRowsIsa(set) as FewRowsIsa;
}
