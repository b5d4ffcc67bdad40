// Data loader: batches of one split of a suite, in the sampler's order, with prefetching.
//
// Two ways to iterate an epoch; both yield the same batches for the same (seed, epoch):
//   for (const batch of loader.epoch(e)) { ...; batch.dispose(); }              // synchronous
//   for await (const batch of loader.epochAsync(e)) { ...; batch.dispose(); }   // worker prefetch
// epoch() gathers batch k+1's uint8 bytes before yielding batch k, on the calling thread.
// epochAsync() has a worker thread gather (and flip) up to `prefetch` batches ahead while the
// caller trains, so that work overlaps the training step; tensors are still built on the calling
// thread when a batch is handed out.
//
// Every batch is a SortedBatch (a TaskBatch), sorted by task in plan() (the one place batches are sorted; see
// docs/ARCHITECTURE.md "The seam"): its rows, labels, teacher-cache rows and Routing agree, and
// its images are channels_last when the option says so.
//
// Ownership: each Batch owns its tensors and the consumer must dispose it (batch.dispose() or
// `using batch = ...`). Batches are created when the iterator's next() is called, so in a
// synchronous loop inside an outer tidy() they belong to that scope and are freed with it; a
// per-step tidy inside the loop body does not own the batch (dispose it explicitly).
import { UserError } from '../tensor/errors.js';
import { type Shard, shardRange } from './shard.js';
import type { Split } from './dataset.js';
import { gatherImages } from './gather.js';
import { GatherChannel } from './gather-pool.js';
import { Rng } from './rng.js';
import type { CropMode } from './crop.js';
import type { Pending } from './stream.js';
import { BatchSampler, type SamplerOptions } from './sampler.js';
import type { SuiteSplit, TaskSuite } from './suite.js';
import { type SortedBatch, makeTaskBatch, sortByTaskStable, type TransformOptions } from './transforms.js';

export interface LoaderOptions extends SamplerOptions, TransformOptions {
  split: Split;
  /** Random horizontal flip, each sample with probability 0.5, seeded by (seed, epoch) (default false). */
  flip?: boolean;
  /** Batches the worker gathers ahead in epochAsync (default 2). */
  prefetch?: number;
  /**
   * Data parallelism: this rank's share of every global batch (src/data/shard.ts). Flips are drawn
   * for the global batch first, so the ranks together see what one process would. A last global
   * batch too small to give every rank two rows (BatchNorm needs two) is dropped.
   */
  shard?: Shard;
}

/** What one batch of an epoch is made of (deterministic given seed and epoch). */
export interface BatchPlan {
  indices: Int32Array;
  flips: Uint8Array;
}

export class DataLoader {
  readonly split: SuiteSplit;
  readonly sampler: BatchSampler;
  readonly opts: Readonly<LoaderOptions>;
  #channel: GatherChannel | null = null;

  constructor(suite: TaskSuite, opts: LoaderOptions) {
    this.opts = { ...opts };
    this.split = suite.split(opts.split);
    this.sampler = new BatchSampler(this.split.taskSizes, opts);
    const sh = opts.shard;
    if (sh && sh.world > 1 && opts.batchSize < 2 * sh.world) {
      throw new UserError(`--batch ${opts.batchSize} is too small for ${sh.world} processes: each needs at least 2 rows of every batch (use --batch ${2 * sh.world} or more)`);
    }
    const p = opts.prefetch ?? 2;
    if (!(Number.isInteger(p) && p >= 1)) throw new UserError(`prefetch must be a positive integer, got ${p}`);
  }

  /** Batches per epoch. */
  get numBatches(): number {
    return this.sampler.numBatches;
  }

  /** Indices and flip flags of every batch of an epoch, each batch sorted by task (stable). */
  plan(epoch: number): BatchPlan[] {
    const batches = this.sampler.epoch(epoch);
    const rng = this.opts.flip ? Rng.from(this.sampler.seed, 'flip', epoch) : null;
    const shard = this.opts.shard;
    const plans = batches.map((indices) => {
      const flips = new Uint8Array(indices.length);
      if (rng) for (let b = 0; b < flips.length; b++) flips[b] = rng.nextU32() >>> 31;
      if (!shard || shard.world === 1) return sortByTaskStable(this.split, indices, flips);
      if (indices.length < 2 * shard.world) return null;
      const [lo, hi] = shardRange(indices.length, shard.rank, shard.world);
      return sortByTaskStable(this.split, indices.subarray(lo, hi), flips.subarray(lo, hi));
    });
    return plans.filter((p): p is BatchPlan => p !== null);
  }

  /** The batches of an epoch from batch `from` on (a resumed epoch), built on the calling thread (see the file comment). */
  *epoch(epoch: number, from = 0): Generator<SortedBatch, void, undefined> {
    const plan = this.plan(epoch).slice(from);
    if (this.split.stream) {
      yield* this.#streamed(plan, epoch);
      return;
    }
    let next = plan.length ? gatherImages(this.split, plan[0]!.indices, plan[0]!.flips) : null;
    for (let k = 0; k < plan.length; k++) {
      const bytes = next!;
      const batch = makeTaskBatch(this.split, plan[k]!.indices, plan[k]!.flips, this.opts, bytes);
      next = k + 1 < plan.length ? gatherImages(this.split, plan[k + 1]!.indices, plan[k + 1]!.flips) : null;
      yield batch;
    }
  }

  /** The batches of an epoch, gathered ahead by a worker thread (see the file comment). */
  async *epochAsync(epoch: number, from = 0): AsyncGenerator<SortedBatch, void, undefined> {
    if (this.split.stream) {
      yield* this.epoch(epoch, from);
      return;
    }
    const plan = this.plan(epoch).slice(from);
    const ahead = this.opts.prefetch ?? 2;
    const requests: Promise<Uint8Array>[] = [];
    const request = (k: number): void => {
      if (k >= plan.length || requests[k] !== undefined) return;
      const r = this.#request(plan[k]!);
      r.catch(() => undefined); // a failure surfaces when that batch is awaited, not as unhandled
      requests[k] = r;
    };
    for (let k = 0; k <= ahead; k++) request(k);
    for (let k = 0; k < plan.length; k++) {
      const bytes = await requests[k]!;
      delete requests[k];
      request(k + ahead + 1);
      yield makeTaskBatch(this.split, plan[k]!.indices, plan[k]!.flips, this.opts, bytes);
    }
  }

  /**
   * A split with packed tasks: each batch is read and decoded by the stream worker (stream.ts),
   * `prefetch` batches ahead of the one handed out. Training crops JPEG rows at random (seeded by
   * seed, epoch and suite index: crop.ts), evaluation takes their centre.
   */
  *#streamed(plan: BatchPlan[], epoch: number): Generator<SortedBatch, void, undefined> {
    const stream = this.split.stream!;
    const crop: CropMode = this.opts.flip ? { kind: 'random', seed: this.sampler.seed, epoch } : { kind: 'center' };
    const ahead = this.opts.prefetch ?? 2;
    const pending: (Pending | undefined)[] = [];
    const request = (k: number): void => {
      if (k < plan.length && !pending[k]) pending[k] = stream.request(plan[k]!.indices, plan[k]!.flips, crop);
    };
    for (let k = 0; k <= ahead; k++) request(k);
    // One host buffer for every batch (the batch's tensor is a copy): memory stays flat.
    let host: Uint8Array | undefined;
    for (let k = 0; k < plan.length; k++) {
      const bytes = (host = stream.take(pending[k]!, host));
      delete pending[k];
      request(k + ahead + 1);
      yield makeTaskBatch(this.split, plan[k]!.indices, plan[k]!.flips, this.opts, bytes);
    }
  }

  /** Stops the prefetch worker (a later epochAsync starts a new one). */
  async close(): Promise<void> {
    const c = this.#channel;
    this.#channel = null;
    if (c) await c.close();
    await this.split.stream?.close();
  }

  #request(p: BatchPlan): Promise<Uint8Array> {
    if (!this.#channel?.alive) this.#channel = new GatherChannel(this.split);
    return this.#channel.request(p.indices, p.flips);
  }
}
