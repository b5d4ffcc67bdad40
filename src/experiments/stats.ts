// Mean and 95% confidence interval over seeds: Student's t interval, mean +- t(0.975, n-1) s/sqrt(n).

/** t(0.975, df) for df = 1..30; beyond, the normal 1.96 is within 2%. */
const T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];

export function t975(df: number): number {
  return df >= 1 && df <= 30 ? T975[df - 1]! : 1.96;
}

export interface Estimate {
  mean: number;
  /** 95% t interval; null with fewer than 2 runs (no spread to estimate). */
  ci95: [number, number] | null;
  runs: number[];
}

export function estimate(runs: readonly number[]): Estimate {
  const n = runs.length;
  const mean = runs.reduce((a, b) => a + b, 0) / Math.max(n, 1);
  if (n < 2) return { mean, ci95: null, runs: runs.slice() };
  const s = Math.sqrt(runs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1));
  const h = (t975(n - 1) * s) / Math.sqrt(n);
  return { mean, ci95: [mean - h, mean + h], runs: runs.slice() };
}

/** The paired differences a[i] - b[i] (same seed) with their t interval. */
export function pairedDifference(a: readonly number[], b: readonly number[]): Estimate {
  if (a.length !== b.length) throw new Error(`paired difference of ${a.length} and ${b.length} runs`);
  return estimate(a.map((x, i) => x - b[i]!));
}
