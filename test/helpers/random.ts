// Deterministic pseudo-random numbers for tests, independent of libtorch's generator.

/** A seeded generator of floats in [0, 1) (mulberry32). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n floats uniform in [lo, hi). */
export function randArray(n: number, seed: number, lo = -1, hi = 1): number[] {
  const r = lcg(seed);
  return Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/**
 * n distinct values in [lo, hi), at least (hi - lo) / (2n) apart: a shuffled grid with jitter.
 * Useful where ties would make a gradient ill-defined (max pooling, sorting).
 */
export function distinctArray(n: number, seed: number, lo = -1, hi = 1): number[] {
  const r = lcg(seed);
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  const step = (hi - lo) / n;
  return idx.map((k) => lo + step * (k + 0.25 + 0.5 * r()));
}
