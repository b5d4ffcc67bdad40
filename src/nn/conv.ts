// Conv2d, as torch.nn.Conv2d (weight [out, in/groups, kh, kw], optional bias, PyTorch's default init).
import type { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { empty } from '../tensor/creation.js';
import { conv2d } from '../tensor/functional.js';
import { UserError } from '../tensor/errors.js';
import { Module } from './module.js';
import { fans, kaimingUniform, uniform } from './init.js';

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
  /** Learnable bias (default true). */
  bias?: boolean;
  dtype?: DType;
}

const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);

/** 2-D convolution over [N, C, H, W]. Parameters: `weight`, and `bias` unless bias: false. */
export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;

  constructor(inChannels: number, outChannels: number, kernelSize: number | [number, number], o: Conv2dOptions = {}) {
    super();
    const groups = o.groups ?? 1;
    if (!(inChannels > 0 && outChannels > 0 && inChannels % groups === 0 && outChannels % groups === 0)) {
      throw new UserError(`Conv2d: in (${inChannels}) and out (${outChannels}) channels must be positive multiples of groups (${groups})`);
    }
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pair(kernelSize);
    this.stride = pair(o.stride ?? 1);
    this.padding = pair(o.padding ?? 0);
    this.dilation = pair(o.dilation ?? 1);
    this.groups = groups;
    const w = empty([outChannels, inChannels / groups, ...this.kernelSize], { dtype: o.dtype });
    // PyTorch's reset_parameters: kaiming_uniform_(a = sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    this.registerParameter('weight', kaimingUniform(w, { a: Math.sqrt(5) }));
    if (o.bias ?? true) {
      const bound = 1 / Math.sqrt(fans(w).fanIn);
      this.registerParameter('bias', uniform(empty([outChannels], { dtype: o.dtype }), -bound, bound));
    }
  }

  get weight(): Tensor {
    return this.getParameter('weight');
  }
  get bias(): Tensor | null {
    return this.hasParameter('bias') ? this.getParameter('bias') : null;
  }

  override get freshOutput(): boolean {
    return this.constructor === Conv2d;
  }

  override forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }
}
