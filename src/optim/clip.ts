// Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_).
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { noGrad } from '../tensor/creation.js';
import { foreachMul_, foreachNormSq, matmul, stack } from '../tensor/functional.js';
import { UserError } from '../tensor/errors.js';

export interface ClipGradNormOptions {
  /** 2 (default, Euclidean) or Infinity (largest absolute value). */
  normType?: number;
  /** Throw a UserError when the total norm is NaN or infinite (default false: clip anyway, as PyTorch). */
  errorIfNonfinite?: boolean;
}

/**
 * Scales the gradients of `params` in place so that their joint norm (all gradients seen as one
 * vector) is at most `maxNorm`, and returns the norm before clipping. The scale is
 * maxNorm / (norm + 1e-6) and is applied only when below 1, as in PyTorch. Parameters without
 * a gradient are ignored; the norm is accumulated in float64.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, options: ClipGradNormOptions = {}): number {
  const normType = options.normType ?? 2;
  if (normType !== 2 && normType !== Infinity) throw new UserError(`clipGradNorm: normType must be 2 or Infinity, got ${normType}`);
  if (typeof maxNorm !== 'number' || Number.isNaN(maxNorm) || maxNorm < 0) throw new UserError(`clipGradNorm: maxNorm must be a number >= 0, got ${maxNorm}`);
  return noGrad(() =>
    tidy(() => {
      const grads: Tensor[] = [];
      for (const p of params) {
        const g = p.grad;
        if (g !== null) grads.push(g);
      }
      if (grads.length === 0) return 0;
      const total = normType === 2 ? Math.sqrt(sumOfSquares(grads)) : Math.max(...grads.map((g) => g.abs().amax().item()));
      if (options.errorIfNonfinite && !Number.isFinite(total)) {
        throw new UserError(`clipGradNorm: the total gradient norm is ${total}; the gradients are not finite`);
      }
      const coef = maxNorm / (total + 1e-6);
      if (coef < 1 || Number.isNaN(coef)) foreachMul_(grads, coef);
      return total;
    }),
  );
}

/**
 * The sum of the squares of every element, without a parameter-sized temporary: each float32 or
 * float64 gradient is dotted with itself (one BLAS dot, accumulated in the gradient's dtype as
 * PyTorch's norm), the per-tensor sums are added in float64. Other dtypes go through
 * foreachNormSq (float64 throughout).
 */
function sumOfSquares(grads: Tensor[]): number {
  const dots: Tensor[] = [];
  const rest: Tensor[] = [];
  for (const g of grads) {
    if (g.dtype !== 'float32' && g.dtype !== 'float64') {
      rest.push(g);
      continue;
    }
    const flat = g.reshape([-1]);
    dots.push(matmul(flat, flat));
    flat.dispose();
  }
  let total = rest.length ? foreachNormSq(rest) : 0;
  if (dots.length) {
    const all = stack(dots).double();
    total += all.sum().item();
    all.dispose();
  }
  return total;
}
