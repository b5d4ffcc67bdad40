// Data-parallel sharding of a global batch: rank r of W takes a contiguous, disjoint share of
// every batch of the seeded epoch order, so the W ranks together see exactly the batch one process
// would (docs/DISTRIBUTED.md). Sizes differ by at most one row.
import { UserError } from '../tensor/errors.js';

export interface Shard {
  rank: number;
  world: number;
}

/** Rank `rank`'s rows [lo, hi) of a global batch of `size` rows over `world` ranks. */
export function shardRange(size: number, rank: number, world: number): [number, number] {
  if (!(Number.isInteger(world) && world >= 1 && Number.isInteger(rank) && rank >= 0 && rank < world)) {
    throw new UserError(`shard: rank ${rank} of world ${world}`);
  }
  const base = Math.floor(size / world);
  const extra = size % world;
  const lo = rank * base + Math.min(rank, extra);
  return [lo, lo + base + (rank < extra ? 1 : 0)];
}
