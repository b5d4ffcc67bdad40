// Linear CKA (Kornblith et al. 2019) between two representations of the same n samples:
// X (n x p), Y (n x q), columns centred: CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F).
// Computed in float64 through the n x n Gram matrices K = X X^T, L = Y Y^T, since
// ||Y^T X||_F^2 = <K, L>_F, ||X^T X||_F = ||K||_F (cheaper than p x q products for wide features).
import { type Tensor, tidy, noGrad } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';

/** Linear CKA of feature matrices x (n x p) and y (n x q), in [0, 1]; NaN when either is constant. */
export function linearCka(x: Tensor, y: Tensor): number {
  if (x.shape.length !== 2 || y.shape.length !== 2) throw new UserError(`CKA needs 2-d feature matrices, got [${x.shape.join(', ')}] and [${y.shape.join(', ')}]`);
  if (x.shape[0] !== y.shape[0]) throw new UserError(`CKA needs the same samples: ${x.shape[0]} rows vs ${y.shape[0]}`);
  if (x.shape[0]! < 2) throw new UserError(`CKA needs at least 2 samples, got ${x.shape[0]}`);
  return noGrad(() =>
    tidy(() => {
      const gram = (m: Tensor): Tensor => {
        const c = m.double();
        const centred = c.sub(c.mean(0, true));
        return centred.matmul(centred.t());
      };
      const k = gram(x);
      const l = gram(y);
      const num = k.mul(l).sum().item();
      const den = Math.sqrt(k.mul(k).sum().item() * l.mul(l).sum().item());
      return den > 0 ? num / den : NaN;
    }),
  );
}

/** CKA between every pair of representations of the same samples: a symmetric matrix with 1 on the diagonal. */
export function ckaMatrix(features: readonly Tensor[]): number[][] {
  const m = features.map(() => new Array<number>(features.length).fill(NaN));
  for (let i = 0; i < features.length; i++) {
    for (let j = i; j < features.length; j++) {
      const v = i === j ? 1 : linearCka(features[i]!, features[j]!);
      m[i]![j] = v;
      m[j]![i] = v;
    }
  }
  return m;
}
