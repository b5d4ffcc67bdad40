// GELU, as torch.nn.GELU: x * Phi(x), by default in the exact erf form (torchvision's ViT MLP).
import type { Tensor } from '../tensor/tensor.js';
import { gelu } from '../tensor/functional.js';
import { UserError } from '../tensor/errors.js';
import { Module } from './module.js';

/** x * Phi(x) with Phi the standard normal CDF ('none': erf form), or its tanh approximation. */
export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
    if (approximate !== 'none' && approximate !== 'tanh') throw new UserError(`GELU: approximate must be none or tanh, got "${String(approximate)}"`);
  }
  override forward(x: Tensor): Tensor {
    return gelu(x, this.approximate);
  }
}
