// Which task each row of a batch belongs to. A batch is sorted by task where it is made (the
// loader's plan, see docs/ARCHITECTURE.md "The seam"), so task t's rows are one contiguous slice:
// rows [offsets[t], offsets[t] + counts[t]). Pure bookkeeping: no model state, safe to share.
import { type Tensor, tensor, keep } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';

export class Routing {
  readonly counts: number[];
  readonly offsets: number[];
  /** Task id of each (sorted) row, int64 [B], per device; created lazily, owned by this routing. */
  readonly #taskIds = new Map<string, Tensor>();
  #present: Routing | undefined;

  constructor(counts: readonly number[]) {
    for (const c of counts) if (!Number.isInteger(c) || c < 0) throw new UserError(`routing: bad task count ${c}`);
    this.counts = counts.slice();
    this.offsets = [];
    let o = 0;
    for (const c of counts) {
      this.offsets.push(o);
      o += c;
    }
  }

  /**
   * The routing of task ids that are already grouped by task in ascending order (0,0,1,2,2,...).
   * Unsorted ids are refused: sorting happens in one place, where a batch is made.
   */
  static fromSortedTaskIds(taskIds: ArrayLike<number>, numTasks: number): Routing {
    const counts = countTasks(taskIds, numTasks);
    for (let i = 1; i < taskIds.length; i++) {
      if (taskIds[i]! < taskIds[i - 1]!) {
        throw new UserError(`batch rows are not sorted by task (row ${i} has task ${taskIds[i]} after task ${taskIds[i - 1]}); batches are sorted where they are made (DataLoader, sortedByTask)`);
      }
    }
    return new Routing(counts);
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
  /**
   * The same rows routed over the tasks present only (task ids renumbered in order): this routing
   * itself when every task has rows (or none has). Made once, owned (and disposed) by this routing.
   */
  presentOnly(): Routing {
    if (this.counts.every((c) => c > 0) || this.counts.every((c) => c === 0)) return this;
    return (this.#present ??= new Routing(this.counts.filter((c) => c > 0)));
  }
  /** Task of each sorted row, as JS numbers. */
  taskIdArray(): Int32Array {
    const ids = new Int32Array(this.batchSize);
    this.counts.forEach((c, t) => ids.fill(t, this.offsets[t]!, this.offsets[t]! + c));
    return ids;
  }
  /** Task id of each sorted row, int64 [B], on the CPU. */
  get taskIds(): Tensor {
    return this.taskIdsOn('cpu');
  }
  /** Task ids on the device of `like` (the tensor they index), made there once. */
  taskIdsFor(like: Tensor): Tensor {
    return this.taskIdsOn(like.device);
  }
  taskIdsOn(device: string): Tensor {
    let t = this.#taskIds.get(device);
    if (t === undefined) {
      const ids = BigInt64Array.from(this.taskIdArray(), (id) => BigInt(id));
      t = keep(tensor(ids, [ids.length], { dtype: 'int64', device }));
      this.#taskIds.set(device, t);
    }
    return t;
  }
  /** Rows [offsets[t], offsets[t] + counts[t]) of x (dim 0): task t's slice of a sorted batch. */
  slice(x: Tensor, t: number): Tensor {
    return x.narrow(0, this.offsets[t]!, this.counts[t]!);
  }
  /** Plain-value form (records, messages to other processes); `new Routing(json.counts)` restores it. */
  toJSON(): { counts: number[] } {
    return { counts: this.counts.slice() };
  }
  dispose(): void {
    for (const t of this.#taskIds.values()) t.dispose();
    this.#taskIds.clear();
    this.#present?.dispose();
    this.#present = undefined;
  }
}

function countTasks(taskIds: ArrayLike<number>, numTasks: number): number[] {
  const counts = new Array<number>(numTasks).fill(0);
  for (let i = 0; i < taskIds.length; i++) {
    const t = taskIds[i]!;
    if (!Number.isInteger(t) || t < 0 || t >= numTasks) throw new UserError(`task id ${t} out of range [0, ${numTasks})`);
    counts[t]!++;
  }
  return counts;
}

/**
 * Sorts task ids (stable): returns the permutation that groups rows by task and the counts.
 * `order[i]` is the original row placed at sorted position i.
 */
export function sortByTask(taskIds: ArrayLike<number>, numTasks: number): { order: number[]; counts: number[] } {
  const counts = countTasks(taskIds, numTasks);
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
