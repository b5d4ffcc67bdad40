// Which task each row of a batch belongs to. The decomposition model sorts a batch by task, so
// task t's rows are one contiguous slice: rows [offsets[t], offsets[t] + counts[t]).
import { type Tensor, tensor, keep } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';

export class Routing {
  readonly counts: number[];
  readonly offsets: number[];
  /** Task id of each (sorted) row, int64 [B]; created lazily, owned by this routing. */
  #taskIds: Tensor | null = null;

  constructor(counts: number[]) {
    for (const c of counts) if (!Number.isInteger(c) || c < 0) throw new UserError(`routing: bad task count ${c}`);
    this.counts = counts.slice();
    this.offsets = [];
    let o = 0;
    for (const c of counts) {
      this.offsets.push(o);
      o += c;
    }
  }

  get numTasks(): number {
    return this.counts.length;
  }
  get batchSize(): number {
    return this.counts.reduce((a, b) => a + b, 0);
  }
  /** Tasks that have rows in this batch. */
  present(): number[] {
    return this.counts.flatMap((c, t) => (c > 0 ? [t] : []));
  }
  get taskIds(): Tensor {
    if (this.#taskIds === null) {
      const ids = new BigInt64Array(this.batchSize);
      this.counts.forEach((c, t) => ids.fill(BigInt(t), this.offsets[t]!, this.offsets[t]! + c));
      this.#taskIds = keep(tensor(ids, [ids.length]));
    }
    return this.#taskIds;
  }
  dispose(): void {
    this.#taskIds?.dispose();
    this.#taskIds = null;
  }
}

/**
 * Sorts task ids (stable): returns the permutation that groups rows by task and the counts.
 * `order[i]` is the original row placed at sorted position i.
 */
export function sortByTask(taskIds: ArrayLike<number>, numTasks: number): { order: number[]; counts: number[] } {
  const counts = new Array<number>(numTasks).fill(0);
  for (let i = 0; i < taskIds.length; i++) {
    const t = taskIds[i]!;
    if (!Number.isInteger(t) || t < 0 || t >= numTasks) throw new UserError(`task id ${t} out of range [0, ${numTasks})`);
    counts[t]!++;
  }
  const next: number[] = [];
  let o = 0;
  for (const c of counts) {
    next.push(o);
    o += c;
  }
  const order = new Array<number>(taskIds.length);
  for (let i = 0; i < taskIds.length; i++) order[next[taskIds[i]!]!++] = i;
  return { order, counts };
}
