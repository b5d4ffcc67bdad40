// Gathering a batch's uint8 images (pure JS, no tensors: also runs in the prefetch worker).

/** Where the images of a split are: one uint8 CHW (3-channel) buffer per task. SuiteSplit is one. */
export interface GatherSource {
  sources: Uint8Array[];
  taskStart: number[];
  height: number;
  width: number;
}

/** Task of suite index i (tasks are contiguous, in order). */
function taskOfIndex(taskStart: number[], i: number): number {
  let t = taskStart.length - 1;
  while (t > 0 && taskStart[t]! > i) t--;
  return t;
}

/**
 * Copies the images of `indices` into one (B, 3, H, W) uint8 buffer; where flips[b] is non-zero,
 * sample b is mirrored left-right (horizontal flip).
 */
export function gatherImages(src: GatherSource, indices: ArrayLike<number>, flips?: ArrayLike<number>, out?: Uint8Array): Uint8Array {
  const { height: h, width: w } = src;
  const per = 3 * h * w;
  const dst = out ?? new Uint8Array(indices.length * per);
  if (dst.length !== indices.length * per) throw new RangeError(`gatherImages: output has ${dst.length} bytes, needs ${indices.length * per}`);
  for (let b = 0; b < indices.length; b++) {
    const i = indices[b]!;
    const t = taskOfIndex(src.taskStart, i);
    const row = i - src.taskStart[t]!;
    const buf = src.sources[t]!;
    const s = row * per;
    if (row < 0 || s + per > buf.length) throw new RangeError(`gatherImages: index ${i} is out of range`);
    const d = b * per;
    if (!flips || !flips[b]) {
      dst.set(buf.subarray(s, s + per), d);
      continue;
    }
    for (let r = 0; r < 3 * h; r++) {
      const so = s + r * w;
      const dOff = d + r * w + w - 1;
      for (let x = 0; x < w; x++) dst[dOff - x] = buf[so + x]!;
    }
  }
  return dst;
}
