// Per-task test accuracy and AUC: the foundation with its unified head (the paper's way: argmax
// over all classes) and restricted to the task's classes; the decomposition model and experts
// with the oracle task id.
import type { TaskSuite, DataLoader, SortedBatch } from '../data/index.js';
import type { ImageClassifier } from '../models/classifier.js';
import type { DecompositionModel } from '../lorkd/decomposition.js';
import { type Tensor, tidy, noGrad, softmax } from '../tensor/index.js';
import { accuracy, auc } from '../eval/metrics.js';
import type { Method } from './methods/method.js';
import type { Module } from '../nn/module.js';
import { InferencePlan } from '../infer/index.js';

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

/**
 * fn on every batch, through the inference path of `net` (src/infer: BatchNorm folded, inference
 * mode), built once from its weights now; without a network, under no-grad.
 */
function forEachBatch(loader: DataLoader, net: Module | null, fn: (b: SortedBatch) => void): void {
  const plan = net ? InferencePlan.of(net) : null;
  try {
    for (const b of loader.epoch(0)) {
      try {
        if (plan) plan.run(() => tidy(() => fn(b)));
        else noGrad(() => tidy(() => fn(b)));
      } finally {
        b.dispose();
      }
    }
  } finally {
    plan?.dispose();
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
  const r = scoreLogits(suite, loader, model, true, (b) => {
    const l = model.forward(prepare(b, channelsLast));
    return b.routing.counts.map((c, t) => (c ? b.routing.slice(l, t) : null));
  });
  return { unified: r.perTask, restricted: r.restricted! };
}

/** The decomposition model (each sample through its own expert and head) on a split. */
export function evalDecomposition(dm: DecompositionModel, suite: TaskSuite, loader: DataLoader, channelsLast = true): TaskResult[] {
  dm.eval();
  // Every strategy computes the same function; the inference path runs the fused one.
  return scoreLogits(suite, loader, dm, false, (b) => dm.forwardRouted(prepare(b, channelsLast), b.routing, 'fused').logits).perTask;
}

/** One deployed expert (a plain model with task t's head) on task t's samples of a split. */
export function evalExpert(model: ImageClassifier, taskId: number, suite: TaskSuite, loader: DataLoader, channelsLast = true): TaskResult {
  model.eval();
  return scoreTask(model, (x) => model.forward(x), taskId, suite, loader, channelsLast);
}

/** A network of task t (logits over its classes) on task t's rows of a split. */
function scoreTask(net: Module, forward: (x: Tensor) => Tensor, taskId: number, suite: TaskSuite, loader: DataLoader, channelsLast: boolean): TaskResult {
  const s = emptyScores(suite.numTasks);
  forEachBatch(loader, net, (b) => {
    // The batch is sorted by task: task t's rows are one slice (no gather, memory format kept).
    if (taskId >= b.routing.numTasks || !b.routing.counts[taskId]) return;
    const off = b.routing.offsets[taskId]!;
    rows(softmax(forward(b.routing.slice(prepare(b, channelsLast), taskId)), 1)).forEach((r, j) => {
      s.pred[taskId]!.push(argmax(r));
      s.probs[taskId]!.push(r);
      s.labels[taskId]!.push(b.info.local[off + j]!);
    });
  });
  return summarise(suite, s)[taskId]!;
}

export const meanOf = (rs: TaskResult[], key: 'accuracy' | 'auc'): number => rs.reduce((a, r) => a + r[key], 0) / Math.max(rs.length, 1);

/** A method's results on a split: per task (the paper's way) and, for a unified head, restricted to the task's classes. */
export interface MethodEval {
  perTask: TaskResult[];
  /** Only for a unified head: argmax over the task's own classes (what its deployed networks compute). */
  restricted: TaskResult[] | null;
}

/**
 * The one evaluation path of every method: its logits of each task's rows (eval mode, no grad).
 * For a unified head (the foundation), accuracy is the paper's (argmax over all classes, correct
 * only if it is the row's own class) and AUC is from the task's columns of the softmax, renormalised.
 */
export function evalMethod(method: Method, suite: TaskSuite, loader: DataLoader): MethodEval {
  return scoreLogits(suite, loader, method.module, !!method.unifiedHead, (b) => method.logits(b));
}

/** Scores per-task logits of task-sorted batches (unified: over all classes; see evalMethod). */
function scoreLogits(suite: TaskSuite, loader: DataLoader, net: Module, unified: boolean, logitsOf: (b: SortedBatch) => (Tensor | null)[]): MethodEval {
  const T = suite.numTasks;
  const uni = emptyScores(T);
  const res = emptyScores(T);
  forEachBatch(loader, net, (b) => {
    logitsOf(b).forEach((l, t) => {
      if (!l) return;
      const task = suite.tasks[t]!;
      const off = b.routing.offsets[t]!;
      // A unified head: the task's columns, softmaxed on their own (= the full softmax renormalised,
      // without its float32 underflow when another task's class dominates).
      const own = unified ? l.narrow(1, task.classOffset, task.numClasses) : l;
      const all = unified ? rows(l) : null;
      rows(softmax(own, 1)).forEach((probs, j) => {
        const label = b.info.local[off + j]!;
        const mine = argmax(probs);
        const g = all ? argmax(all[j]!) : mine + task.classOffset;
        uni.pred[t]!.push(g - task.classOffset === mine ? mine : -1);
        res.pred[t]!.push(mine);
        for (const s of [uni, res]) {
          s.probs[t]!.push(probs);
          s.labels[t]!.push(label);
        }
      });
    });
  });
  return { perTask: summarise(suite, uni), restricted: unified ? summarise(suite, res) : null };
}

/** Each task's deployed network (method.deploy(t)) on that task's rows of a split. */
export function evalDeployed(method: Method, suite: TaskSuite, loader: DataLoader, channelsLast = true, device = 'cpu'): TaskResult[] {
  return suite.tasks.map((_, t) => {
    const net = method.deploy(t);
    try {
      net.module.to(device);
      if (channelsLast) net.module.toChannelsLast();
      net.module.eval();
      return scoreTask(net.module, (x) => net.forward(x), t, suite, loader, channelsLast);
    } finally {
      net.dispose();
    }
  });
}
