// Gathering a batch's uint8 images (pure JS, no tensors: also runs in the prefetch worker).
import type { RowStream } from './stream.js';

/**
 * Where the images of a split are: one uint8 CHW (3-channel) buffer per task. SuiteSplit is one.
 * `heights`/`widths` give each task's stored size when tasks differ; without them every task is
 * `height` x `width`.
 */
export interface GatherSource {
  sources: Uint8Array[];
  /** A split with packed tasks: rows come from its stream (stream.ts), not from `sources`. */
  stream?: RowStream | null;
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

/** Copies one (3, h, w) image from src[s..] to dst[d..], mirrored left-right when `flip`. */
export function copyRow(src: Uint8Array, s: number, dst: Uint8Array, d: number, h: number, w: number, flip: boolean): void {
  if (!flip) {
    dst.set(src.subarray(s, s + 3 * h * w), d);
    return;
  }
  for (let r = 0; r < 3 * h; r++) {
    const so = s + r * w;
    const dOff = d + r * w + w - 1;
    for (let x = 0; x < w; x++) dst[dOff - x] = src[so + x]!;
  }
}

/**
 * Copies the images of `indices` into one uint8 buffer, row after row, each row (3, h, w) at its
 * task's stored size; where flips[b] is non-zero, row b is mirrored left-right (horizontal flip).
 */
export function gatherImages(src: GatherSource, indices: ArrayLike<number>, flips?: ArrayLike<number>, out?: Uint8Array): Uint8Array {
  if (src.stream) {
    const bytes = src.stream.fetch(Int32Array.from(indices), flips ? Uint8Array.from(flips) : new Uint8Array(indices.length), { kind: 'center' });
    if (out) out.set(bytes);
    return out ?? bytes;
  }
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
    copyRow(buf, s, dst, d, h, w, !!flips?.[b]);
    d += per;
  }
  return dst;
}
