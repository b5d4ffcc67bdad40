// The distributed sampler: every rank sees the same seeded global batches (the suite's sampler,
// same seed and epoch) and takes its own disjoint, contiguous share of each, so the ranks together
// train on exactly the global batch one process would (the global batch size is the --batch the
// user gives; with --nproc N each rank's share is batch / N rows).
import { UserError } from '../tensor/errors.js';
import { shardRange } from '../data/shard.js';

export { shardRange };

/** This rank's share of a global batch's indices. */
export function shardBatch(indices: Int32Array, rank: number, world: number): Int32Array {
  const [lo, hi] = shardRange(indices.length, rank, world);
  return indices.subarray(lo, hi);
}

/** Refuses a global batch that cannot give every rank at least two rows (BatchNorm needs two values). */
export function checkGlobalBatch(batch: number, world: number): void {
  if (batch < 2 * world) throw new UserError(`--batch ${batch} is too small for ${world} processes: each needs at least 2 rows (use --batch ${2 * world} or more)`);
}
