// Multi-head self-attention, as torch.nn.MultiheadAttention(dim, heads, batch_first=True) called
// with query = key = value: the same parameter names (`in_proj_weight` [3D, D], `in_proj_bias`,
// `out_proj.weight`, `out_proj.bias`) and the same initialisation, so torchvision's ViT weights load.
import type { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { empty, zeros } from '../tensor/creation.js';
import { linear, matmul, softmax, dropout } from '../tensor/functional.js';
import { tidy } from '../tensor/scope.js';
import { UserError } from '../tensor/errors.js';
import { Module } from './module.js';
import { Linear } from './linear.js';
import { xavierUniform, zeros as zeros_ } from './init.js';

/**
 * softmax(Q K^T / sqrt(d)) V per head over tokens [N, L, D], then the output projection. The
 * attention matmuls are 2 L^2 D multiply-adds per image (eval/complexity.ts counts them here).
 */
export class MultiheadAttention extends Module {
  readonly headDim: number;

  constructor(
    readonly dim: number,
    readonly numHeads: number,
    readonly dropout = 0,
    o: { dtype?: DType } = {},
  ) {
    super();
    if (!(Number.isInteger(dim) && dim > 0 && Number.isInteger(numHeads) && numHeads > 0 && dim % numHeads === 0)) {
      throw new UserError(`MultiheadAttention: dim (${dim}) must be a positive multiple of numHeads (${numHeads})`);
    }
    this.headDim = dim / numHeads;
    this.registerParameter('in_proj_weight', xavierUniform(empty([3 * dim, dim], { dtype: o.dtype })));
    this.registerParameter('in_proj_bias', zeros([3 * dim], { dtype: o.dtype }));
    const out = this.registerModule('out_proj', new Linear(dim, dim, { dtype: o.dtype }));
    zeros_(out.bias!);
  }

  get inProjWeight(): Tensor {
    return this.getParameter('in_proj_weight');
  }
  get inProjBias(): Tensor {
    return this.getParameter('in_proj_bias');
  }
  get outProj(): Linear {
    return this.getModule<Linear>('out_proj');
  }

  /** Self-attention of x [N, L, D] (batch first); returns [N, L, D]. */
  override forward(x: Tensor): Tensor {
    return tidy(() => {
      if (x.ndim !== 3 || x.size(2) !== this.dim) throw new UserError(`MultiheadAttention: input must be [N, L, ${this.dim}], got [${x.shape.join(', ')}]`);
      const [n, l] = x.shape as [number, number];
      // [N, L, 3D] -> [3, N, H, L, d]
      const qkv = linear(x, this.inProjWeight, this.inProjBias).view([n, l, 3, this.numHeads, this.headDim]).permute([2, 0, 3, 1, 4]);
      const [q, k, v] = [0, 1, 2].map((i) => qkv.select(0, i)) as [Tensor, Tensor, Tensor];
      let attn = softmax(matmul(q.mul(1 / Math.sqrt(this.headDim)), k.transpose(-2, -1)), -1);
      if (this.training && this.dropout > 0) attn = dropout(attn, this.dropout, true);
      const y = matmul(attn, v).transpose(1, 2).reshape([n, l, this.dim]);
      return this.outProj.forward(y);
    });
  }
}
