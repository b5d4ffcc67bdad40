// Data parallelism over a process group, as PyTorch's DistributedDataParallel: the same initial
// weights on every rank (broadcast from rank 0), and after each backward pass gradients averaged
// over the ranks by c10d's Reducer, which buckets them (25 MiB, the first bucket 1 MiB, in reverse
// registration order) and starts each bucket's all-reduce from an autograd hook as soon as its
// gradients are ready, overlapping communication with the rest of the backward pass.
//
// Two ways to use it, one per kind of method:
//   ddp.beforeBackward(loss); loss.backward();   // one backward per step: the Reducer (overlapped)
//   ...several backward passes...; ddp.allReduceGradients();  // e.g. per-task backward passes
//     (MoCo-MTL, Aligned-MTL): one bucketed all-reduce after them, before the optimiser step.
// BatchNorm keeps per-rank statistics (DDP's default); syncBn converts them to SyncBatchNorm2d.
import { native } from '../tensor/native.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { noGrad, zeros, tidy, DTYPE_BYTES } from '../tensor/index.js';
import type { ProcessGroup } from './process-group.js';
import { convertSyncBatchNorm } from './sync-batchnorm.js';

export interface DdpOptions {
  /** Bucket size of the gradient all-reduce in bytes (default 25 MiB, as DDP). */
  bucketBytes?: number;
  /** All-reduce BatchNorm statistics over the ranks (SyncBatchNorm). */
  syncBn?: boolean;
}

export class DistributedDataParallel {
  readonly params: Tensor[];
  readonly buckets: number;
  readonly #reducer: number;
  readonly bucketBytes: number;
  readonly syncBn: boolean;

  constructor(
    readonly module: Module,
    readonly group: ProcessGroup,
    o: DdpOptions = {},
  ) {
    this.syncBn = !!o.syncBn;
    if (o.syncBn) convertSyncBatchNorm(module, group);
    this.bucketBytes = o.bucketBytes ?? 25 * 1024 * 1024;
    this.params = module.parameters().filter((p) => p.requiresGrad);
    // Every rank starts from rank 0's weights and buffers (DDP's constructor does the same).
    noGrad(() => group.broadcast([...this.params, ...module.buffers()], 0));
    // find_unused_parameters: a batch without rows of some task leaves that task's head unused.
    const r = native.distReducer(this.params.map((p) => p.handle), this.bucketBytes, true) as { id: number; buckets: number };
    this.#reducer = r.id;
    this.buckets = r.buckets;
  }

  /**
   * Rank 0's buffers (BatchNorm running statistics) into every rank, as DDP does before each
   * forward (broadcast_buffers): validation and checkpoints then agree across ranks. With
   * SyncBatchNorm the statistics already agree and nothing is sent.
   */
  syncBuffers(): void {
    if (!this.syncBn) this.group.broadcast(this.module.buffers(), 0);
  }

  /** Call with the loss just before its backward(): the Reducer then averages the gradients as they are produced. */
  beforeBackward(outputs: Tensor | Tensor[]): void {
    native.distPrepareBackward(this.#reducer, (Array.isArray(outputs) ? outputs : [outputs]).map((t) => t.handle));
  }

  /** Frees the native Reducer (its autograd hooks and its references to the parameters). */
  dispose(): void {
    native.distReducerFree(this.#reducer);
  }

  /**
   * Averages every parameter's gradient over the ranks now (bucketed by bytes of each gradient's
   * own dtype; a missing gradient counts as a zero made on the parameter's device).
   */
  allReduceGradients(): void {
    const grads = tidy(() => this.params.map((p) => p.grad ?? zeros(p.shape, { dtype: p.dtype, device: p.device })));
    for (const bucket of bucketsBySize(grads, this.bucketBytes)) this.group.allReduce(bucket, 'avg');
    this.params.forEach((p, i) => {
      if (p.grad === null) p.grad = grads[i]!;
      else grads[i]!.dispose();
    });
  }
}

/**
 * Consecutive groups of tensors, each closed once it holds at least `capBytes` bytes (counted
 * with each tensor's own element size: float64 gradients fill a bucket twice as fast).
 */
export function bucketsBySize(ts: Tensor[], capBytes: number): Tensor[][] {
  const out: Tensor[][] = [];
  let bucket: Tensor[] = [];
  let bytes = 0;
  for (const t of ts) {
    bucket.push(t);
    bytes += t.numel * DTYPE_BYTES[t.dtype];
    if (bytes >= capBytes) {
      out.push(bucket);
      bucket = [];
      bytes = 0;
    }
  }
  if (bucket.length) out.push(bucket);
  return out;
}
