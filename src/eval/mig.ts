// Mutual information gap (Chen et al. 2018), computed as disentanglement_lib does: each latent
// dimension is discretised into equal-width histogram bins (20 by default) over its range; the
// mutual information m[j][k] between discretised latent j and discrete factor k is the plug-in
// estimate from the contingency counts (nats); MIG = mean over factors k of
// (largest m[.][k] - second largest m[.][k]) / H(v_k).
import { UserError } from '../tensor/errors.js';

/** Bin index (0..bins-1) of each value of one latent, equal-width bins between its min and max. */
export function discretise(values: ArrayLike<number>, bins = 20): Int32Array {
  if (!(Number.isInteger(bins) && bins >= 1)) throw new UserError(`MIG: bins must be a positive integer, got ${bins}`);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) throw new UserError(`MIG: latent value ${i} is ${v}`);
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const out = new Int32Array(values.length);
  const w = (hi - lo) / bins;
  if (!(w > 0)) return out; // a constant latent: one bin
  for (let i = 0; i < values.length; i++) out[i] = Math.min(bins - 1, Math.floor((values[i]! - lo) / w));
  return out;
}

const distinct = (a: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, a[i]!);
  return m + 1;
};

/** Entropy (nats) of a discrete variable with values 0..K-1. */
export function entropy(v: ArrayLike<number>): number {
  const k = distinct(v);
  const c = new Float64Array(k);
  for (let i = 0; i < v.length; i++) c[v[i]!]!++;
  let h = 0;
  for (const x of c) if (x > 0) h -= (x / v.length) * Math.log(x / v.length);
  return h;
}

/** Plug-in mutual information (nats) of two discrete variables with values 0..A-1 and 0..B-1. */
export function mutualInformation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  if (b.length !== n) throw new UserError(`MIG: ${a.length} latent values for ${b.length} factor values`);
  const A = distinct(a);
  const B = distinct(b);
  const joint = new Float64Array(A * B);
  const pa = new Float64Array(A);
  const pb = new Float64Array(B);
  for (let i = 0; i < n; i++) {
    joint[a[i]! * B + b[i]!]!++;
    pa[a[i]!]!++;
    pb[b[i]!]!++;
  }
  let mi = 0;
  for (let x = 0; x < A; x++) {
    for (let y = 0; y < B; y++) {
      const j = joint[x * B + y]!;
      if (j > 0) mi += (j / n) * Math.log((j * n) / (pa[x]! * pb[y]!));
    }
  }
  return Math.max(0, mi);
}

export interface FactorGap {
  factor: string;
  /** H(v_k) in nats. */
  entropy: number;
  /** The latent with the largest mutual information, and that information (nats). */
  top: { latent: number; mi: number };
  second: { latent: number; mi: number } | null;
  /** (top - second) / entropy (null for a constant factor). */
  gap: number | null;
}

export interface MigResult {
  /** Mean of the factors' gaps (over factors with non-zero entropy); null when there is none. */
  mig: number | null;
  factors: FactorGap[];
  bins: number;
  n: number;
  latents: number;
}

/**
 * MIG of latents `z` (n rows of d values, row-major) with respect to discrete factors
 * (name -> n integer values 0..K-1).
 */
export function mig(z: ArrayLike<number>, n: number, d: number, factors: Record<string, ArrayLike<number>>, bins = 20): MigResult {
  if (z.length !== n * d) throw new UserError(`MIG: ${z.length} latent values for ${n} x ${d}`);
  if (n < 2) throw new UserError(`MIG needs at least 2 samples, got ${n}`);
  const codes: Int32Array[] = [];
  const col = new Float64Array(n);
  for (let j = 0; j < d; j++) {
    for (let i = 0; i < n; i++) col[i] = z[i * d + j]!;
    codes.push(discretise(col, bins));
  }
  const out: FactorGap[] = [];
  for (const [name, v] of Object.entries(factors)) {
    if (v.length !== n) throw new UserError(`MIG: factor ${name} has ${v.length} values for ${n} samples`);
    for (let i = 0; i < n; i++) if (!(Number.isInteger(v[i]!) && v[i]! >= 0)) throw new UserError(`MIG: factor ${name} value ${i} is ${v[i]}, not a class index`);
    const h = entropy(v);
    const mi = codes.map((c) => mutualInformation(c, v));
    const order = mi.map((m, j) => j).sort((a, b) => mi[b]! - mi[a]! || a - b);
    const top = { latent: order[0]!, mi: mi[order[0]!]! };
    const second = order.length > 1 ? { latent: order[1]!, mi: mi[order[1]!]! } : null;
    out.push({ factor: name, entropy: h, top, second, gap: h > 0 ? (top.mi - (second?.mi ?? 0)) / h : null });
  }
  const gaps = out.map((f) => f.gap).filter((g): g is number => g !== null);
  return { mig: gaps.length ? gaps.reduce((a, g) => a + g, 0) / gaps.length : null, factors: out, bins, n, latents: d };
}
