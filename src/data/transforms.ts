// Batch transforms: uint8 (B,3,H,W) -> float [0,1] -> bilinear resize to S x S (antialias off, as
// torch F.interpolate(align_corners=False)) -> per-channel (x - mean) / std. The random horizontal
// flip is applied to the uint8 bytes when they are gathered (gather.ts), before upload.
import { type Tensor, tensor, interpolate, tidy, cat, hostToDevice } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { gatherImages, sizeRuns } from './gather.js';
import type { SuiteSplit } from './suite.js';
import { Routing } from './routing.js';

export type Triple = readonly [number, number, number];

export interface TransformOptions {
  /** Output side S; default: the input size (no resize). */
  size?: number;
  /** Per-channel mean and std (default 0.5 and 0.5, the paper's released code). */
  mean?: Triple;
  std?: Triple;
  /**
   * Device for the batch tensors (default 'cpu'). The uint8 bytes are uploaded, then converted;
   * on CUDA every upload goes through pinned host memory with a non-blocking copy.
   */
  device?: string;
  /** Task batches' images in channels_last memory format (the models' format; default false here, true in training). */
  channelsLast?: boolean;
}

/** A training or evaluation batch. Owns its tensors: call dispose() (or `using`) when done. */
export interface Batch {
  /** float32 (B, 3, S, S), normalised. */
  images: Tensor;
  /** int64 (B): label within the sample's task. */
  local: Tensor;
  /** int64 (B): label in the suite's unified label space (local + class offset of the task). */
  global: Tensor;
  /** int64 (B): task id of each sample. */
  taskIds: Tensor;
  /** The same facts in JS (no read-back needed), plus suite indices and flip flags. */
  info: { indices: Int32Array; taskIds: Int32Array; local: Int32Array; global: Int32Array; flipped: Uint8Array };
  /** Number of samples B. */
  size: number;
  /** Frees the batch's tensors (idempotent). */
  dispose(): void;
  [Symbol.dispose](): void;
}

function checkTriple(v: Triple, what: string): void {
  if (v.length !== 3 || v.some((x) => !Number.isFinite(x))) throw new UserError(`${what} must be 3 finite numbers, got [${v.join(', ')}]`);
}

/**
 * uint8 (n,3,h,w) bytes -> float32 (n,3,S,S) normalised tensor, or (n,3,h,w) without a size.
 * The result joins the current tidy scope (if any), like any op result; intermediates are freed.
 */
export function imagesToTensor(bytes: Uint8Array, n: number, h: number, w: number, opts: TransformOptions = {}): Tensor {
  const size = opts.size;
  const mean = opts.mean ?? [0.5, 0.5, 0.5];
  const std = opts.std ?? [0.5, 0.5, 0.5];
  if (size !== undefined && !(Number.isInteger(size) && size >= 1)) throw new UserError(`image size must be a positive integer, got ${size}`);
  checkTriple(mean, 'mean');
  checkTriple(std, 'std');
  if (std.some((s) => s === 0)) throw new UserError('std must not be 0');
  const device = opts.device ?? 'cpu';
  return tidy(() => {
    const u8 = hostToDevice(tensor(bytes, [n, 3, h, w], { dtype: 'uint8' }), device);
    let x = u8.float().div_(255);
    if (size !== undefined && (size !== h || size !== w)) x = interpolate(x, [size, size], 'bilinear', false);
    const m = tensor(Float32Array.from(mean), [1, 3, 1, 1], { device });
    const s = tensor(Float32Array.from(std), [1, 3, 1, 1], { device });
    return x.add_(m, -1).div_(s);
  });
}

/**
 * The gathered bytes of a batch as one tensor. Tasks stored at different sizes (a suite of 28x28
 * and 64x64 tasks) are converted run by run, each run resized straight to opts.size, then joined.
 */
export function batchImages(split: SuiteSplit, bytes: Uint8Array, indices: Int32Array, opts: TransformOptions): Tensor {
  if (split.uniform) return imagesToTensor(bytes, indices.length, split.height, split.width, opts);
  if (opts.size === undefined) {
    throw new UserError(`tasks stored at different sizes (${split.heights.map((h, t) => `${h}x${split.widths[t]}`).join(', ')}) need an input size to resize to`);
  }
  return tidy(() => {
    let off = 0;
    const parts = sizeRuns(split, indices).map(([, m, h, w]) => {
      const x = imagesToTensor(bytes.subarray(off, off + m * 3 * h * w), m, h, w, opts);
      off += m * 3 * h * w;
      return x;
    });
    return parts.length === 1 ? parts[0]! : cat(parts, 0);
  });
}

/**
 * A batch sorted by task where it is made (docs/ARCHITECTURE.md, "The seam"): task t's rows are
 * the contiguous slice [routing.offsets[t], routing.offsets[t] + routing.counts[t]), images are in
 * the model's memory format, and everything that belongs to a row travels with it in the same
 * order. No consumer re-sorts. This is what a method (src/experiments/methods) consumes.
 */
export interface TaskBatch {
  /** float32 (B, C, S, S), normalised, in the model's memory format (channels_last in training). */
  images: Tensor;
  /** int64 (B): label within the row's task. */
  local: Tensor;
  /** int64 (B): label in the suite's unified label space. */
  global: Tensor;
  routing: Routing;
  /** int64 (B): rows of the teacher cache (suite index, + n for a flipped view), or null without one. */
  teacherRows: Tensor | null;
  /** JS copies (sorted order): suite indices, flip flags, task ids, local labels. */
  info: { indices: Int32Array; flipped: Uint8Array; taskIds: Int32Array; local: Int32Array };
  size: number;
  dispose(): void;
}

/** What the loader yields: a Batch that is also a TaskBatch (sorted, routed, teacher rows set). */
export interface SortedBatch extends Omit<Batch, 'info'>, Omit<TaskBatch, 'info' | 'teacherRows'> {
  info: Batch['info'];
  teacherRows: Tensor;
}

/** Labels as an int64 tensor. */
function longTensor(a: Int32Array, device: string): Tensor {
  return hostToDevice(tensor(a, [a.length], { dtype: 'int64' }), device);
}

/**
 * Builds a batch from suite indices. `images` may be bytes already gathered (with the flips
 * applied, e.g. by the prefetch worker); otherwise they are gathered here.
 */
export function makeBatch(split: SuiteSplit, indices: Int32Array, flips: Uint8Array, opts: TransformOptions = {}, images?: Uint8Array): Batch {
  const n = indices.length;
  const bytes = images ?? gatherImages(split, indices, flips);
  const taskIds = new Int32Array(n);
  const local = new Int32Array(n);
  const global = new Int32Array(n);
  for (let b = 0; b < n; b++) {
    const i = indices[b]!;
    taskIds[b] = split.taskIds[i]!;
    local[b] = split.local[i]!;
    global[b] = split.global[i]!;
  }
  const device = opts.device ?? 'cpu';
  const t = tidy(() => ({
    images: batchImages(split, bytes, indices, opts),
    local: longTensor(local, device),
    global: longTensor(global, device),
    taskIds: longTensor(taskIds, device),
  }));
  const dispose = (): void => {
    t.images.dispose();
    t.local.dispose();
    t.global.dispose();
    t.taskIds.dispose();
  };
  return {
    ...t,
    info: { indices: indices.slice(), taskIds, local, global, flipped: flips.slice() },
    size: n,
    dispose,
    [Symbol.dispose]: dispose,
  };
}

/**
 * A task batch from suite indices that are already grouped by task in ascending task order (the
 * loader's plan sorts them; see sortByTaskStable). Unsorted indices are refused with a UserError.
 * Images become channels_last when opts.channelsLast is set.
 */
export function makeTaskBatch(split: SuiteSplit, indices: Int32Array, flips: Uint8Array, opts: TransformOptions = {}, images?: Uint8Array): SortedBatch {
  const routing = Routing.fromSortedTaskIds(Array.from(indices, (i) => split.taskIds[i]!), split.taskSizes.length);
  const b = makeBatch(split, indices, flips, opts, images);
  const device = opts.device ?? 'cpu';
  const t = tidy(() => ({
    images: opts.channelsLast ? b.images.contiguous('channels_last') : b.images,
    teacherRows: hostToDevice(tensor(Int32Array.from(indices, (i, k) => i + (flips[k] ? split.n : 0)), [indices.length], { dtype: 'int64' }), device),
  }));
  if (t.images !== b.images) b.images.dispose();
  const dispose = (): void => {
    b.dispose();
    t.images.dispose();
    t.teacherRows.dispose();
    routing.dispose();
  };
  return { ...b, images: t.images, teacherRows: t.teacherRows, routing, dispose, [Symbol.dispose]: dispose };
}

/**
 * Suite indices (and their flip flags) reordered so that rows are grouped by task in ascending
 * order, keeping the given order within a task (a stable sort): the one place a batch is sorted.
 */
export function sortByTaskStable(split: Pick<SuiteSplit, 'taskIds'>, indices: Int32Array, flips: Uint8Array): { indices: Int32Array; flips: Uint8Array } {
  const order = Array.from(indices.keys()).sort((a, b) => split.taskIds[indices[a]!]! - split.taskIds[indices[b]!]! || a - b);
  return { indices: Int32Array.from(order, (k) => indices[k]!), flips: Uint8Array.from(order, (k) => flips[k]!) };
}
