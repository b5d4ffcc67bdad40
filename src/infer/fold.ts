// BatchNorm folded exactly into the convolution before it (PyTorch's fuse_conv_bn_eval). In eval
// mode BN(conv(x, W) + b) = conv(x, W * s) + (b - mean) * s + beta, with s = gamma / sqrt(var + eps)
// per output channel. For an expert convolution (paper 3.1) the output channel scale applies to
// W0 + delta_t alike, and delta_t = reshape(B_t A_t) * scale scales row-blockwise in B_t: row
// o*k + j of B_t (j < k) belongs to output channel o. So W0' = s W0, B_t' = s B_t, A_t unchanged.
// The arithmetic runs in float64 and rounds once to the weights' dtype.
import { type Tensor, noGrad, tidy, keep } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import type { BatchNorm2d } from '../nn/batchnorm.js';
import type { ExpertWeights } from '../lorkd/strategies.js';

/** A convolution's folded weight and bias (new tensors, kept out of every tidy scope). */
export interface FoldedConv {
  weight: Tensor;
  bias: Tensor;
}

/** The folded expert factors: W0' and B' (A is shared with the model), the bias, the scale. */
export interface FoldedExpert extends FoldedConv {
  expertA: Tensor;
  expertB: Tensor;
  scale: number;
}

/** s = gamma / sqrt(var + eps) and the shift beta - mean * s, in float64. */
function affineOf(bn: BatchNorm2d): { s: Tensor; shift: Tensor } {
  const mean = bn.runningMean;
  const variance = bn.runningVar;
  if (!mean || !variance) throw new UserError('fold: a BatchNorm without running statistics cannot be folded');
  const v = variance.double().add(bn.eps).rsqrt();
  const s = bn.weight ? v.mul(bn.weight.double()) : v;
  const shift = mean.double().mul(s).neg();
  return { s, shift: bn.bias ? shift.add(bn.bias.double()) : shift };
}

const perOut = (s: Tensor, ndim: number): Tensor => s.view([-1, ...Array<number>(ndim - 1).fill(1)]);

/** conv(x, weight) + bias, then bn (eval mode), as one convolution. */
export function foldConvBn(weight: Tensor, bias: Tensor | null, bn: BatchNorm2d): FoldedConv {
  if (weight.size(0) !== bn.numFeatures) throw new UserError(`fold: a conv of ${weight.size(0)} outputs before a BatchNorm of ${bn.numFeatures}`);
  return noGrad(() =>
    tidy(() => {
      const { s, shift } = affineOf(bn);
      const w = weight.double().mul(perOut(s, weight.ndim)).to(weight.dtype);
      const b = (bias ? bias.double().mul(s).add(shift) : shift).to(weight.dtype);
      return { weight: keep(w.contiguous()), bias: keep(b) };
    }),
  );
}

/** An expert convolution's weights (ExpertConv2d.weights()) followed by bn, folded. */
export function foldExpertBn(w: ExpertWeights, bn: BatchNorm2d): FoldedExpert {
  const k = w.weight.size(2);
  return noGrad(() =>
    tidy(() => {
      const base = foldConvBn(w.weight, null, bn);
      const { s } = affineOf(bn);
      // B: (T, Cout*k, r*k); rows o*k .. o*k+k-1 scale by s[o].
      const rows = s.view([-1, 1]).expand([s.size(0), k]).reshape([1, -1, 1]);
      const b = w.expertB.double().mul(rows).to(w.expertB.dtype);
      return { ...base, expertA: keep(w.expertA.detach().contiguous()), expertB: keep(b.contiguous()), scale: w.scale };
    }),
  );
}
