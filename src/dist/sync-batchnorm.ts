// SyncBatchNorm (`--sync-bn`): BatchNorm2d whose training-mode statistics are computed over the
// global batch of all ranks, as torch.nn.SyncBatchNorm, on the input's device (NCCL on CUDA).
// The per-channel sums, sums of squares and the element count of every rank go through one
// differentiable all-reduce, so the backward pass is the one of a BatchNorm over the whole global batch. Keys stay BatchNorm2d's (weight,
// bias, running_mean, running_var, num_batches_tracked): checkpoints load either way.
import { BatchNorm2d } from '../nn/batchnorm.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { cat, noGrad, tensor, tidy } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import type { ProcessGroup } from './process-group.js';

export class SyncBatchNorm2d extends BatchNorm2d {
  constructor(
    bn: BatchNorm2d,
    readonly group: ProcessGroup,
  ) {
    super(bn.numFeatures, { eps: bn.eps, momentum: bn.momentum, affine: bn.affine, trackRunningStats: bn.trackRunningStats });
    // Take over bn's tensors (same objects: the optimiser and state dict see no change).
    for (const [name, p] of bn.namedParameters({ recurse: false })) {
      this.getParameter(name).dispose();
      this.registerParameter(name, p);
    }
    for (const [name, b] of bn.namedBuffers({ recurse: false })) {
      this.getBuffer(name).dispose();
      this.registerBuffer(name, b);
    }
  }

  override forward(x: Tensor): Tensor {
    if (!this.training) return super.forward(x);
    if (x.ndim !== 4) throw new UserError(`SyncBatchNorm2d: expected a 4-D input [N, C, H, W], got [${x.shape.join(', ')}]`);
    const C = this.numFeatures;
    const local = x.shape[0]! * x.shape[2]! * x.shape[3]!;
    const stats = tidy(() => {
      const packed = cat([x.sum([0, 2, 3]), x.mul(x).sum([0, 2, 3]), tensor([local], [1], { dtype: x.dtype, device: x.device })], 0);
      return this.group.allReduceSumGrad(packed);
    });
    return tidy(() => {
      const n = noGrad(() => stats.narrow(0, 2 * C, 1).item());
      if (n <= 1) throw new UserError(`SyncBatchNorm2d: expected more than 1 value per channel over all ranks, got ${n}`);
      const mean = stats.narrow(0, 0, C).div(n);
      const varBiased = stats.narrow(0, C, C).div(n).sub(mean.mul(mean));
      if (this.trackRunningStats) {
        noGrad(() => {
          const nb = this.getBuffer('num_batches_tracked');
          nb.add_(1);
          const m = this.momentum ?? 1 / nb.item();
          this.getBuffer('running_mean').mul_(1 - m).add_(mean.detach().mul(m));
          this.getBuffer('running_var').mul_(1 - m).add_(varBiased.detach().mul((m * n) / (n - 1)));
        });
      }
      const shape = [1, C, 1, 1];
      let y = x.sub(mean.reshape(shape)).mul(varBiased.add(this.eps).rsqrt().reshape(shape));
      if (this.affine) y = y.mul(this.getParameter('weight').reshape(shape)).add(this.getParameter('bias').reshape(shape));
      stats.dispose();
      return y;
    });
  }
}

/** Replaces every BatchNorm2d in `root` by a SyncBatchNorm2d over the same tensors; returns how many. */
export function convertSyncBatchNorm(root: Module, group: ProcessGroup): number {
  let n = 0;
  for (const [name, m] of root.namedModules()) {
    if (name !== '' && m instanceof BatchNorm2d && !(m instanceof SyncBatchNorm2d)) {
      root.setSubmodule(name, new SyncBatchNorm2d(m, group));
      n++;
    }
  }
  return n;
}
