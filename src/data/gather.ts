// Gathering a batch's uint8 images (pure JS, no tensors: also runs in the prefetch worker).

/**
 * Where the images of a split are: one uint8 CHW (3-channel) buffer per task. SuiteSplit is one.
 * `heights`/`widths` give each task's stored size when tasks differ; without them every task is
 * `height` x `width`.
 */
export interface GatherSource {
  sources: Uint8Array[];
  taskStart: number[];
  height: number;
  width: number;
  heights?: number[];
  widths?: number[];
}

/** Task of suite index i (tasks are contiguous, in order). */
export function taskOfIndex(taskStart: number[], i: number): number {
  let t = taskStart.length - 1;
  while (t > 0 && taskStart[t]! > i) t--;
  return t;
}

/** Stored height and width of task t's images. */
export const sizeOf = (src: GatherSource, t: number): [number, number] => [src.heights?.[t] ?? src.height, src.widths?.[t] ?? src.width];

/**
 * Consecutive rows of a batch stored at one size: [first row, row count, height, width]. A batch
 * sorted by task has at most one run per task; a suite of one size gives one run.
 */
export function sizeRuns(src: GatherSource, indices: ArrayLike<number>): [number, number, number, number][] {
  const runs: [number, number, number, number][] = [];
  for (let b = 0; b < indices.length; b++) {
    const [h, w] = sizeOf(src, taskOfIndex(src.taskStart, indices[b]!));
    const last = runs[runs.length - 1];
    if (last && last[2] === h && last[3] === w) last[1]++;
    else runs.push([b, 1, h, w]);
  }
  return runs;
}

/**
 * Copies the images of `indices` into one uint8 buffer, row after row, each row (3, h, w) at its
 * task's stored size; where flips[b] is non-zero, row b is mirrored left-right (horizontal flip).
 */
export function gatherImages(src: GatherSource, indices: ArrayLike<number>, flips?: ArrayLike<number>, out?: Uint8Array): Uint8Array {
  let total = 0;
  for (let b = 0; b < indices.length; b++) {
    const [h, w] = sizeOf(src, taskOfIndex(src.taskStart, indices[b]!));
    total += 3 * h * w;
  }
  const dst = out ?? new Uint8Array(total);
  if (dst.length !== total) throw new RangeError(`gatherImages: output has ${dst.length} bytes, needs ${total}`);
  let d = 0;
  for (let b = 0; b < indices.length; b++) {
    const i = indices[b]!;
    const t = taskOfIndex(src.taskStart, i);
    const [h, w] = sizeOf(src, t);
    const per = 3 * h * w;
    const row = i - src.taskStart[t]!;
    const buf = src.sources[t]!;
    const s = row * per;
    if (row < 0 || s + per > buf.length) throw new RangeError(`gatherImages: index ${i} is out of range`);
    if (!flips || !flips[b]) dst.set(buf.subarray(s, s + per), d);
    else {
      for (let r = 0; r < 3 * h; r++) {
        const so = s + r * w;
        const dOff = d + r * w + w - 1;
        for (let x = 0; x < w; x++) dst[dOff - x] = buf[so + x]!;
      }
    }
    d += per;
  }
  return dst;
}
