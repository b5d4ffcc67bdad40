// Parameter-free layers: ReLU, MaxPool2d, AdaptiveAvgPool2d, Dropout, Flatten, Identity.
import type { Tensor } from '../tensor/tensor.js';
import { relu, maxPool2d, adaptiveAvgPool2d, dropout } from '../tensor/functional.js';
import { UserError } from '../tensor/errors.js';
import { Module } from './module.js';

/** max(x, 0). */
export class ReLU extends Module {
  override forward(x: Tensor): Tensor {
    return relu(x);
  }
  override forwardInPlace(x: Tensor): Tensor {
    return x.relu_();
  }
}

export interface MaxPool2dOptions {
  /** Default: the kernel size. */
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  ceilMode?: boolean;
}

/** Max pooling over windows of [N, C, H, W]. */
export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize: number | [number, number],
    readonly options: MaxPool2dOptions = {},
  ) {
    super();
  }
  override forward(x: Tensor): Tensor {
    return maxPool2d(x, this.kernelSize, this.options);
  }
}

/** Average pooling to a fixed output size ([1, 1]: global average pooling). */
export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: number | [number, number]) {
    super();
  }
  override forward(x: Tensor): Tensor {
    return adaptiveAvgPool2d(x, this.outputSize);
  }
}

/** Zeroes each element with probability p in training mode (scaling the rest by 1/(1-p)); identity in eval mode. */
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new UserError(`Dropout: p must be in [0, 1], got ${p}`);
  }
  override forward(x: Tensor): Tensor {
    return this.training && this.p > 0 ? dropout(x, this.p, true) : x;
  }
}

/** Flattens dims start..end (default: everything after the batch dim). */
export class Flatten extends Module {
  constructor(
    readonly startDim = 1,
    readonly endDim = -1,
  ) {
    super();
  }
  override forward(x: Tensor): Tensor {
    return x.flatten(this.startDim, this.endDim);
  }
}

/** Returns its input (the same Tensor object). */
export class Identity extends Module {
  override forward(x: Tensor): Tensor {
    return x;
  }
}
