// Gradient check: autograd against central finite differences, in float64.
import { Tensor, tensor, tidy, noGrad } from '../../src/tensor/index.js';
import { randArray } from './random.js';

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Absolute and relative tolerance on each gradient element (defaults 1e-6 and 1e-5). */
  atol?: number;
  rtol?: number;
  /** Seed of the random upstream gradient that weights the outputs. */
  seed?: number;
}

export interface GradcheckReport {
  /** Largest |autograd - finite difference| over all checked elements. */
  maxAbsError: number;
  /** Number of input elements checked. */
  checked: number;
}

/**
 * Checks the gradients of fn with respect to each input (float64 tensors; only their values are
 * used). The scalar that is differentiated is sum(fn(...inputs) * W) with a fixed random W, so
 * every output element gets a different upstream gradient. Each input element is perturbed by
 * +-eps and the central difference compared with autograd. Throws on the first mismatch, naming
 * the input and element.
 */
export function gradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], o: GradcheckOptions = {}): GradcheckReport {
  const eps = o.eps ?? 1e-6;
  const atol = o.atol ?? 1e-6;
  const rtol = o.rtol ?? 1e-5;
  for (const [i, t] of inputs.entries()) if (t.dtype !== 'float64') throw new TypeError(`gradcheck: input ${i} must be float64, got ${t.dtype}`);
  const data = inputs.map((t) => Float64Array.from(t.toNumbers()));
  const shapes = inputs.map((t) => t.shape);
  return tidy(() => {
    const leaves = data.map((d, i) => tensor(d.slice(), shapes[i], { dtype: 'float64', requiresGrad: true }));
    const out = fn(...leaves);
    const w = tensor(Float64Array.from(randArray(out.numel, o.seed ?? 7)), out.shape, { dtype: 'float64' });
    out.mul(w).sum().backward();
    const analytic = leaves.map((l, i) => l.grad?.toNumbers() ?? new Array<number>(data[i]!.length).fill(0));

    const f = (k: number, j: number, delta: number): number =>
      tidy(() =>
        noGrad(() => {
          const xs = data.map((d, i) => {
            const c = d.slice();
            if (i === k) c[j]! += delta;
            return tensor(c, shapes[i], { dtype: 'float64' });
          });
          return fn(...xs).mul(w).sum().item();
        }),
      );

    let maxAbsError = 0;
    let checked = 0;
    for (let k = 0; k < data.length; k++) {
      for (let j = 0; j < data[k]!.length; j++) {
        const numeric = (f(k, j, eps) - f(k, j, -eps)) / (2 * eps);
        const auto = analytic[k]![j]!;
        const err = Math.abs(numeric - auto);
        maxAbsError = Math.max(maxAbsError, err);
        checked++;
        if (!(err <= atol + rtol * Math.abs(numeric))) {
          throw new Error(`gradcheck: input ${k} [${shapes[k]}] element ${j}: autograd ${auto}, finite difference ${numeric} (|diff| ${err})`);
        }
      }
    }
    return { maxAbsError, checked };
  });
}
