// Per-task test accuracy and AUC: the foundation with its unified head (the paper's way: argmax
// over all classes) and restricted to the task's classes; the decomposition model and experts
// with the oracle task id.
import type { TaskSuite, DataLoader, SortedBatch } from '../data/index.js';
import type { ImageClassifier } from '../models/classifier.js';
import type { DecompositionModel } from '../lorkd/decomposition.js';
import { type Tensor, tidy, noGrad, softmax } from '../tensor/index.js';
import { accuracy, auc } from '../eval/metrics.js';

export interface TaskResult {
  task: string;
  n: number;
  accuracy: number;
  auc: number;
}

export interface Scores {
  /** Per task: predicted local class and class probabilities (within the task) per sample. */
  pred: number[][];
  probs: number[][][];
  labels: number[][];
}

function emptyScores(T: number): Scores {
  return { pred: Array.from({ length: T }, () => []), probs: Array.from({ length: T }, () => []), labels: Array.from({ length: T }, () => []) };
}

const rows = (t: Tensor): number[][] => {
  const [n, c] = t.shape as [number, number];
  const a = t.toArray() as Float32Array;
  return Array.from({ length: n }, (_, i) => Array.from(a.subarray(i * c, (i + 1) * c)));
};
const argmax = (r: number[]) => r.reduce((best, v, i) => (v > r[best]! ? i : best), 0);

/** The batch's images in the requested memory format (a no-op when the loader made them so). */
function prepare(batch: SortedBatch, channelsLast: boolean): Tensor {
  return channelsLast ? batch.images.contiguous('channels_last') : batch.images;
}

function forEachBatch(loader: DataLoader, fn: (b: SortedBatch) => void): void {
  for (const b of loader.epoch(0)) {
    try {
      noGrad(() => tidy(() => fn(b)));
    } finally {
      b.dispose();
    }
  }
}

export function summarise(suite: TaskSuite, s: Scores): TaskResult[] {
  return suite.tasks.map((t, i) => ({
    task: t.name,
    n: s.labels[i]!.length,
    accuracy: accuracy(s.pred[i]!, s.labels[i]!),
    auc: auc(s.probs[i]!, s.labels[i]!),
  }));
}

/**
 * The foundation model on a split. `unified`: argmax over all classes of all tasks, correct only
 * if it is the sample's own class (AUC from the task's columns of the full softmax, renormalised).
 * `restricted`: argmax over the task's own classes.
 */
export function evalFoundation(model: ImageClassifier, suite: TaskSuite, loader: DataLoader, channelsLast = true): { unified: TaskResult[]; restricted: TaskResult[] } {
  model.eval();
  const T = suite.numTasks;
  const uni = emptyScores(T);
  const res = emptyScores(T);
  forEachBatch(loader, (b) => {
    const p = rows(softmax(model.forward(prepare(b, channelsLast)), 1));
    for (let i = 0; i < b.size; i++) {
      const t = b.info.taskIds[i]!;
      const task = suite.tasks[t]!;
      const own = p[i]!.slice(task.classOffset, task.classOffset + task.numClasses);
      const z = own.reduce((a, v) => a + v, 0) || 1;
      const g = argmax(p[i]!);
      const label = b.info.local[i]!;
      uni.pred[t]!.push(g >= task.classOffset && g < task.classOffset + task.numClasses ? g - task.classOffset : -1);
      res.pred[t]!.push(argmax(own));
      const probs = own.map((v) => v / z);
      uni.probs[t]!.push(probs);
      res.probs[t]!.push(probs);
      uni.labels[t]!.push(label);
      res.labels[t]!.push(label);
    }
  });
  return { unified: summarise(suite, uni), restricted: summarise(suite, res) };
}

/** The decomposition model (each sample through its own expert and head) on a split. */
export function evalDecomposition(dm: DecompositionModel, suite: TaskSuite, loader: DataLoader, channelsLast = true): TaskResult[] {
  dm.eval();
  const s = emptyScores(suite.numTasks);
  forEachBatch(loader, (b) => {
    const out = dm.forwardRouted(prepare(b, channelsLast), b.routing);
    out.logits.forEach((l, t) => {
      if (!l) return;
      const off = b.routing.offsets[t]!;
      rows(softmax(l, 1)).forEach((r, j) => {
        s.pred[t]!.push(argmax(r));
        s.probs[t]!.push(r);
        s.labels[t]!.push(b.info.local[off + j]!);
      });
    });
  });
  return summarise(suite, s);
}

/** One deployed expert (a plain model with task t's head) on task t's samples of a split. */
export function evalExpert(model: ImageClassifier, taskId: number, suite: TaskSuite, loader: DataLoader, channelsLast = true): TaskResult {
  model.eval();
  const s = emptyScores(suite.numTasks);
  forEachBatch(loader, (b) => {
    // The batch is sorted by task: task t's rows are one slice (no gather, memory format kept).
    if (taskId >= b.routing.numTasks || !b.routing.counts[taskId]) return;
    const off = b.routing.offsets[taskId]!;
    rows(softmax(model.forward(b.routing.slice(prepare(b, channelsLast), taskId)), 1)).forEach((r, j) => {
      s.pred[taskId]!.push(argmax(r));
      s.probs[taskId]!.push(r);
      s.labels[taskId]!.push(b.info.local[off + j]!);
    });
  });
  return summarise(suite, s)[taskId]!;
}

export const meanOf = (rs: TaskResult[], key: 'accuracy' | 'auc'): number => rs.reduce((a, r) => a + r[key], 0) / Math.max(rs.length, 1);
