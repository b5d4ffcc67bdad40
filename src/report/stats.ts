// Intervals the report computes itself (a run with one seed): Wilson's score interval for a test
// accuracy, the binomial uncertainty of k correct out of n images.

const Z95 = 1.959963984540054;

/** Wilson's 95% score interval for a proportion p observed on n trials. */
export function wilson95(p: number, n: number): [number, number] {
  if (!(n > 0)) return [p, p];
  const z2 = Z95 * Z95;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (Z95 / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

export const meanOf = (xs: number[]): number => xs.reduce((a, x) => a + x, 0) / Math.max(xs.length, 1);
