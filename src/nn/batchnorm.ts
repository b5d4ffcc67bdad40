// BatchNorm2d, as torch.nn.BatchNorm2d: affine weight/bias and running statistics, with
// torchvision's state-dict names (running_mean, running_var, num_batches_tracked).
import type { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { ones, zeros, noGrad } from '../tensor/creation.js';
import { batchNorm } from '../tensor/functional.js';
import { UserError } from '../tensor/errors.js';
import { Module } from './module.js';

export interface BatchNorm2dOptions {
  eps?: number;
  /** Weight of the new batch statistic in the running average (default 0.1); null: cumulative average. */
  momentum?: number | null;
  /** Learnable weight and bias (default true). */
  affine?: boolean;
  /** Keep running statistics and use them in eval mode (default true). */
  trackRunningStats?: boolean;
  dtype?: DType;
}

/**
 * Normalises each channel of [N, C, H, W] with the batch statistics in training mode (updating
 * the running ones and num_batches_tracked) and the running statistics in eval mode.
 */
export class BatchNorm2d extends Module {
  readonly eps: number;
  /** Weight of a new batch statistic in the running averages; null: cumulative average (may be changed, as in PyTorch). */
  momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;

  constructor(
    readonly numFeatures: number,
    o: BatchNorm2dOptions = {},
  ) {
    super();
    if (!(numFeatures > 0)) throw new UserError(`BatchNorm2d: numFeatures must be positive, got ${numFeatures}`);
    this.eps = o.eps ?? 1e-5;
    this.momentum = o.momentum === undefined ? 0.1 : o.momentum;
    this.affine = o.affine ?? true;
    this.trackRunningStats = o.trackRunningStats ?? true;
    const d = { dtype: o.dtype };
    if (this.affine) {
      this.registerParameter('weight', ones([numFeatures], d));
      this.registerParameter('bias', zeros([numFeatures], d));
    }
    if (this.trackRunningStats) {
      this.registerBuffer('running_mean', zeros([numFeatures], d));
      this.registerBuffer('running_var', ones([numFeatures], d));
      this.registerBuffer('num_batches_tracked', zeros([], { dtype: 'int64' }));
    }
  }

  /** Running mean 0, running variance 1, num_batches_tracked 0 (before recalibrating statistics). */
  resetRunningStats(): void {
    if (!this.trackRunningStats) return;
    noGrad(() => {
      this.getBuffer('running_mean').zero_();
      this.getBuffer('running_var').fill_(1);
      this.getBuffer('num_batches_tracked').zero_();
    });
  }

  get weight(): Tensor | null {
    return this.affine ? this.getParameter('weight') : null;
  }
  get bias(): Tensor | null {
    return this.affine ? this.getParameter('bias') : null;
  }
  get runningMean(): Tensor | null {
    return this.trackRunningStats ? this.getBuffer('running_mean') : null;
  }
  get runningVar(): Tensor | null {
    return this.trackRunningStats ? this.getBuffer('running_var') : null;
  }
  get numBatchesTracked(): Tensor | null {
    return this.trackRunningStats ? this.getBuffer('num_batches_tracked') : null;
  }

  override get freshOutput(): boolean {
    return this.constructor === BatchNorm2d;
  }

  override forward(x: Tensor): Tensor {
    if (x.ndim !== 4) throw new UserError(`BatchNorm2d: expected a 4-D input [N, C, H, W], got [${x.shape.join(', ')}]`);
    // As PyTorch: the batch variance of a single value is undefined (running_var would become NaN).
    if ((this.training || !this.trackRunningStats) && x.shape[0]! * x.shape[2]! * x.shape[3]! === 1) {
      throw new UserError(
        `BatchNorm2d: expected more than 1 value per channel when training, got input [${x.shape.join(', ')}] (a batch of one image whose feature map is 1x1: use a batch of 2 or more, or a larger input)`,
      );
    }
    let momentum = this.momentum ?? 0;
    if (this.training && this.trackRunningStats) {
      const n = this.getBuffer('num_batches_tracked');
      noGrad(() => n.add_(1));
      if (this.momentum === null) momentum = 1 / n.item();
    }
    // In training mode at::batch_norm updates running_mean/running_var in place.
    return batchNorm(x, {
      weight: this.weight,
      bias: this.bias,
      runningMean: this.runningMean,
      runningVar: this.runningVar,
      training: this.training || !this.trackRunningStats,
      momentum,
      eps: this.eps,
    });
  }
}
