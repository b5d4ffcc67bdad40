// Eigendecomposition of a small symmetric matrix in float64 (cyclic Jacobi rotations). The engine
// has no symmetric eigen op; Aligned-MTL only needs it for the T x T Gram matrix of the task
// gradients (T = number of tasks), where Jacobi is exact to rounding and takes microseconds.

export interface SymmetricEigen {
  /** Eigenvalues, unsorted (in the order of the columns of `vectors`). */
  values: number[];
  /** vectors[i][k]: component i of the k-th unit eigenvector. */
  vectors: number[][];
}

/** Eigenvalues and orthonormal eigenvectors of the symmetric n x n matrix `m` (m is not changed). */
export function symmetricEigen(m: readonly (readonly number[])[]): SymmetricEigen {
  const n = m.length;
  for (const row of m) if (row.length !== n) throw new Error(`symmetricEigen: expected a square matrix, got a row of ${row.length} for ${n} rows`);
  const a = m.map((row) => row.slice());
  const v: number[][] = a.map((_, i) => a.map((__, j) => (i === j ? 1 : 0)));
  const offNorm = (): number => {
    let s = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) s += a[i]![j]! * a[i]![j]!;
    return Math.sqrt(s);
  };
  let scale = 0;
  for (const row of a) for (const x of row) scale = Math.max(scale, Math.abs(x));
  for (let sweep = 0; sweep < 100 && offNorm() > 1e-15 * scale; sweep++) {
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p]![q]!;
        if (apq === 0) continue;
        // The rotation that zeroes a[p][q] (Golub & Van Loan, sym.schur2).
        const tau = (a[q]![q]! - a[p]![p]!) / (2 * apq);
        const t = Math.sign(tau || 1) / (Math.abs(tau) + Math.sqrt(1 + tau * tau));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k]![p]!;
          const akq = a[k]![q]!;
          a[k]![p] = c * akp - s * akq;
          a[k]![q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p]![k]!;
          const aqk = a[q]![k]!;
          a[p]![k] = c * apk - s * aqk;
          a[q]![k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k]![p]!;
          const vkq = v[k]![q]!;
          v[k]![p] = c * vkp - s * vkq;
          v[k]![q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: a.map((row, i) => row[i]!), vectors: v };
}
