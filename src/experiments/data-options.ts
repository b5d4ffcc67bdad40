// Data options shared by the training and evaluation commands.
import { DataLoader, TaskSuite, type Split, type Triple } from '../data/index.js';
import { loadTasks } from '../data/medmnist.js';

export interface DataOptions {
  /** Bundled MedMNIST names (breastmnist, ...), paths of MedMNIST-format npz files, ImageFolder roots, or packs (`pack:DIR` or the pack's folder). */
  tasks: string[];
  /** Input side S (images are resized bilinearly to S x S). */
  input: number;
  batch: number;
  seed: number;
  mean?: Triple;
  std?: Triple;
  /** Train and run in channels_last memory format (much faster for these CNNs on CPU). */
  channelsLast?: boolean;
  /** Where the loaders deliver batches ('cpu', 'cuda', 'cuda:N'; default the CPU): on CUDA from pinned memory, non-blocking. */
  device?: string;
}

export const DEFAULT_TASKS = ['breastmnist', 'pneumoniamnist', 'retinamnist'];

export function loadSuite(o: Pick<DataOptions, 'tasks'> & { input?: number }): TaskSuite {
  return new TaskSuite(loadTasks(o.tasks, { input: o.input }));
}

/**
 * Training loader: the paper's plain shuffle over the concatenated tasks, random flips. Under data
 * parallelism each process takes its shard of every global batch (`shard`: its rank and the world size).
 */
export function trainLoader(suite: TaskSuite, o: DataOptions, shard?: { rank: number; world: number }): DataLoader {
  return new DataLoader(suite, { split: 'train', batchSize: o.batch, seed: o.seed, flip: true, mergeSingleton: true, shard, size: o.input, mean: o.mean, std: o.std, channelsLast: o.channelsLast ?? true, device: o.device });
}

/** Evaluation loader: in order, no flips. */
export function evalLoader(suite: TaskSuite, o: DataOptions, split: Split, batch = 256): DataLoader {
  return new DataLoader(suite, { split, batchSize: batch, shuffle: false, size: o.input, mean: o.mean, std: o.std, channelsLast: o.channelsLast ?? true, device: o.device });
}
