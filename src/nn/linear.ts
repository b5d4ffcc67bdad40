// Linear, as torch.nn.Linear (weight [out, in], optional bias, PyTorch's default init).
import type { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { empty } from '../tensor/creation.js';
import { linear } from '../tensor/functional.js';
import { UserError } from '../tensor/errors.js';
import { Module } from './module.js';
import { kaimingUniform, uniform } from './init.js';

/** y = x W^T + b over the last dim. Parameters: `weight`, and `bias` unless bias: false. */
export class Linear extends Module {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    o: { bias?: boolean; dtype?: DType } = {},
  ) {
    super();
    if (!(inFeatures > 0 && outFeatures > 0)) throw new UserError(`Linear: features must be positive, got ${inFeatures} -> ${outFeatures}`);
    this.registerParameter('weight', kaimingUniform(empty([outFeatures, inFeatures], { dtype: o.dtype }), { a: Math.sqrt(5) }));
    if (o.bias ?? true) {
      const bound = 1 / Math.sqrt(inFeatures);
      this.registerParameter('bias', uniform(empty([outFeatures], { dtype: o.dtype }), -bound, bound));
    }
  }

  get weight(): Tensor {
    return this.getParameter('weight');
  }
  get bias(): Tensor | null {
    return this.hasParameter('bias') ? this.getParameter('bias') : null;
  }

  override forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}
