// Seeded batch order over the concatenation of a suite's tasks.
import { UserError } from '../tensor/errors.js';
import { Rng } from './rng.js';

export interface SamplerOptions {
  batchSize: number;
  /** Seed of the order (default 0). The order is a function of (seed, epoch) only. */
  seed?: number;
  /** Shuffle each epoch (default true); false gives 0..n-1 in order (evaluation). */
  shuffle?: boolean;
  /** Drop the last batch if it is smaller than batchSize (default false: keep it). */
  dropLast?: boolean;
  /**
   * A last batch of a single sample joins the batch before it, which then holds batchSize + 1
   * samples (default false). Training loaders set it: BatchNorm cannot train on one sample, and
   * the epoch still visits every sample once, in the same seeded order.
   */
  mergeSingleton?: boolean;
  /**
   * Task-balanced order (default false, the paper's plain shuffle): every task gets an equal
   * share of the epoch (sizes differ by at most one) and every batch holds about batchSize / T
   * samples of each task. Small tasks are repeated, large ones subsampled; within a task no sample
   * repeats before all of that task's samples have been drawn.
   */
  balanced?: boolean;
  /** Samples per epoch in balanced mode (default: the total number of samples). */
  epochSize?: number;
}

/**
 * Batches of suite indices: `taskSizes[t]` samples for task t, task t's samples at indices
 * taskStart[t] .. taskStart[t] + taskSizes[t] - 1 (task order, as in SuiteSplit).
 */
export class BatchSampler {
  readonly n: number;
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly mergeSingleton: boolean;
  readonly balanced: boolean;
  /** Indices drawn per epoch (n, or epochSize when balanced). */
  readonly epochLength: number;
  readonly #sizes: number[];
  readonly #starts: number[];

  constructor(taskSizes: readonly number[], opts: SamplerOptions) {
    if (!(Number.isInteger(opts.batchSize) && opts.batchSize >= 1)) throw new UserError(`batch size must be a positive integer, got ${opts.batchSize}`);
    if (taskSizes.some((s) => !(Number.isInteger(s) && s >= 0))) throw new UserError(`task sizes must be non-negative integers, got [${taskSizes.join(', ')}]`);
    this.#sizes = taskSizes.slice();
    this.#starts = [];
    let n = 0;
    for (const s of taskSizes) {
      this.#starts.push(n);
      n += s;
    }
    this.n = n;
    this.batchSize = opts.batchSize;
    this.seed = opts.seed ?? 0;
    this.shuffle = opts.shuffle ?? true;
    this.dropLast = opts.dropLast ?? false;
    this.mergeSingleton = opts.mergeSingleton ?? false;
    this.balanced = opts.balanced ?? false;
    this.epochLength = this.balanced ? (opts.epochSize ?? n) : n;
    if (this.balanced && !(Number.isInteger(this.epochLength) && this.epochLength >= 0)) {
      throw new UserError(`epoch size must be a non-negative integer, got ${opts.epochSize}`);
    }
  }

  /** Batches per epoch. */
  get numBatches(): number {
    const L = this.epochLength;
    if (this.dropLast) return Math.floor(L / this.batchSize);
    const n = Math.ceil(L / this.batchSize);
    return this.#mergesLast() ? n - 1 : n;
  }

  /** Whether the last batch would hold one sample and joins the one before it. */
  #mergesLast(): boolean {
    return this.mergeSingleton && !this.dropLast && this.batchSize > 1 && this.epochLength > this.batchSize && this.epochLength % this.batchSize === 1;
  }

  /** The full index order of an epoch (before cutting into batches). */
  order(epoch: number): Int32Array {
    if (this.balanced) return this.#balanced(epoch);
    const rng = Rng.from(this.seed, 'order', epoch);
    const p = new Int32Array(this.n);
    for (let i = 0; i < this.n; i++) p[i] = i;
    return this.shuffle ? rng.shuffle(p) : p;
  }

  /** The batches of an epoch: views into order(epoch). */
  epoch(epoch: number): Int32Array[] {
    const o = this.order(epoch);
    const out: Int32Array[] = [];
    const nb = this.numBatches;
    for (let b = 0; b < nb; b++) {
      const end = b === nb - 1 && this.#mergesLast() ? o.length : Math.min(o.length, (b + 1) * this.batchSize);
      out.push(o.subarray(b * this.batchSize, end));
    }
    return out;
  }

  #balanced(epoch: number): Int32Array {
    const rng = Rng.from(this.seed, 'balanced', epoch);
    const active = this.#sizes.flatMap((s, t) => (s > 0 ? [t] : []));
    const L = this.epochLength;
    const out = new Int32Array(L);
    if (active.length === 0) {
      if (L > 0) throw new UserError('cannot draw a balanced epoch: every task is empty');
      return out;
    }
    // Task of each slot: rounds of a random permutation of the tasks.
    const round = Int32Array.from(active);
    for (let i = 0; i < L; i++) {
      const k = i % round.length;
      if (k === 0) rng.shuffle(round);
      out[i] = round[k]!;
    }
    // Fill each task's slots from its cycled permutations.
    const streams = new Map<number, { perm: Int32Array; pos: number }>();
    for (let i = 0; i < L; i++) {
      const t = out[i]!;
      let s = streams.get(t);
      if (!s || s.pos === s.perm.length) {
        s = { perm: rng.permutation(this.#sizes[t]!), pos: 0 };
        streams.set(t, s);
      }
      out[i] = this.#starts[t]! + s.perm[s.pos++]!;
    }
    return out;
  }
}
