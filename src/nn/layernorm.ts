// LayerNorm, as torch.nn.LayerNorm (normalised over the trailing dims, elementwise affine weight/bias).
import type { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { ones, zeros } from '../tensor/creation.js';
import { layerNorm } from '../tensor/functional.js';
import { UserError } from '../tensor/errors.js';
import { Module } from './module.js';

export interface LayerNormOptions {
  /** Added to the variance (default 1e-5, as PyTorch; torchvision's ViT uses 1e-6). */
  eps?: number;
  /** Learnable `weight` (ones) and `bias` (zeros) (default true). */
  elementwiseAffine?: boolean;
  dtype?: DType;
}

/** (x - mean) / sqrt(var + eps) * weight + bias over the last dims `normalizedShape`. */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;

  constructor(normalizedShape: number | number[], o: LayerNormOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape.slice();
    if (this.normalizedShape.length === 0 || !this.normalizedShape.every((d) => Number.isInteger(d) && d > 0)) {
      throw new UserError(`LayerNorm: normalizedShape must be positive integers, got [${this.normalizedShape.join(', ')}]`);
    }
    this.eps = o.eps ?? 1e-5;
    if (o.elementwiseAffine ?? true) {
      this.registerParameter('weight', ones(this.normalizedShape, { dtype: o.dtype }));
      this.registerParameter('bias', zeros(this.normalizedShape, { dtype: o.dtype }));
    }
  }

  get weight(): Tensor | null {
    return this.hasParameter('weight') ? this.getParameter('weight') : null;
  }
  get bias(): Tensor | null {
    return this.hasParameter('bias') ? this.getParameter('bias') : null;
  }

  override forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}
