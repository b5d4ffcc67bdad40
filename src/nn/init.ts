// Weight initialisation, as torch.nn.init: every function fills its tensor in place under noGrad
// (from libtorch's global generator, so manualSeed makes it reproducible) and returns it.
import type { Tensor } from '../tensor/tensor.js';
import { noGrad } from '../tensor/creation.js';
import { UserError } from '../tensor/errors.js';

export type Nonlinearity = 'linear' | 'conv2d' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu';
export type FanMode = 'fan_in' | 'fan_out';

export interface KaimingOptions {
  /** Negative slope of the leaky ReLU that follows (only for 'leaky_relu'); default 0. */
  a?: number;
  /** Keep the variance of activations ('fan_in', default) or of gradients ('fan_out'). */
  mode?: FanMode;
  /** Default 'leaky_relu', as PyTorch. */
  nonlinearity?: Nonlinearity;
}

/** fan_in and fan_out of a weight: dims 1 and 0 times the receptive field (torch.nn.init). */
export function fans(t: Tensor): { fanIn: number; fanOut: number } {
  const s = t.shape;
  if (s.length < 2) throw new UserError(`init: fan in and fan out need a tensor with at least 2 dims, got [${s.join(', ')}]`);
  let receptive = 1;
  for (const d of s.slice(2)) receptive *= d;
  return { fanIn: s[1]! * receptive, fanOut: s[0]! * receptive };
}

/** The recommended gain for a nonlinearity (torch.nn.init.calculate_gain). */
export function gain(nonlinearity: Nonlinearity, a = 0): number {
  switch (nonlinearity) {
    case 'linear':
    case 'conv2d':
    case 'sigmoid':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu':
      return Math.sqrt(2 / (1 + a * a));
  }
}

function kaimingStd(t: Tensor, o: KaimingOptions): number {
  const { fanIn, fanOut } = fans(t);
  const fan = (o.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut;
  return gain(o.nonlinearity ?? 'leaky_relu', o.a ?? 0) / Math.sqrt(fan);
}

/** U(lo, hi). */
export function uniform(t: Tensor, lo = 0, hi = 1): Tensor {
  return noGrad(() => t.uniform_(lo, hi));
}
/** N(mean, std^2). */
export function normal(t: Tensor, mean = 0, std = 1): Tensor {
  return noGrad(() => t.normal_(mean, std));
}
export function zeros(t: Tensor): Tensor {
  return noGrad(() => t.zero_());
}
export function ones(t: Tensor): Tensor {
  return noGrad(() => t.fill_(1));
}
export function constant(t: Tensor, v: number): Tensor {
  return noGrad(() => t.fill_(v));
}

/** He uniform: U(-b, b) with b = gain * sqrt(3 / fan) (kaiming_uniform_). */
export function kaimingUniform(t: Tensor, o: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3) * kaimingStd(t, o);
  return uniform(t, -bound, bound);
}

/** He normal: N(0, (gain / sqrt(fan))^2) (kaiming_normal_; torchvision's ResNet uses fan_out, relu). */
export function kaimingNormal(t: Tensor, o: KaimingOptions = {}): Tensor {
  return normal(t, 0, kaimingStd(t, o));
}

/** Glorot uniform: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)) (xavier_uniform_). */
export function xavierUniform(t: Tensor, gainValue = 1): Tensor {
  const { fanIn, fanOut } = fans(t);
  const bound = gainValue * Math.sqrt(6 / (fanIn + fanOut));
  return uniform(t, -bound, bound);
}
