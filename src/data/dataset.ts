// In-memory image classification data: the common form every data source is converted to.
import type { PackRef } from './stream.js';

export type Split = 'train' | 'val' | 'test';
export const SPLITS: readonly Split[] = ['train', 'val', 'test'];

/** How the labels of a task are to be read (MedMNIST's INFO `task` values). */
export type TaskType = 'binary-class' | 'multi-class' | 'ordinal-regression';

/**
 * One split of one task: n images stored as uint8 CHW with 3 channels, plus integer labels. A
 * packed task's split (`pack`) holds no images in memory: its rows are streamed from the pack
 * (stream.ts), height x width each.
 */
export interface ImageSplit {
  n: number;
  channels: 3;
  height: number;
  width: number;
  /** n * 3 * height * width bytes, sample-major, then channel, row, column. */
  images: Uint8Array;
  /** Class index of each sample, in [0, numClasses). */
  labels: Int32Array;
  /** Where the rows are when they are not in `images` (empty then). */
  pack?: PackRef;
}

/** One classification task (a "department" in the paper): class names and its splits. */
export interface TaskData {
  name: string;
  classNames: string[];
  task: TaskType;
  /** Channels in the source files (1 = grey, repeated to 3 when loaded). */
  sourceChannels: 1 | 3;
  splits: Record<Split, ImageSplit>;
}

/** Number of samples of each class in a split. */
export function classCounts(split: ImageSplit, numClasses: number): number[] {
  const c = new Array<number>(numClasses).fill(0);
  for (const l of split.labels) c[l] = (c[l] ?? 0) + 1;
  return c;
}
