// The method seam (docs/ARCHITECTURE.md, "Methods"): every method of the paper's Table 1 is one
// object of this shape. One trainer, one evaluation path and one results schema serve them all.
import type { Module } from '../../nn/module.js';
import type { Tensor } from '../../tensor/index.js';
import type { DecompositionModel, RankSpec } from '../../lorkd/decomposition.js';

export type MethodName = 'foundation' | 'stl' | 'mtl' | 'stl-kd' | 'mtl-kd' | 'moco-mtl' | 'aligned-mtl' | 'kf' | 'lorkd' | 'grow';
export const METHOD_NAMES: readonly MethodName[] = ['foundation', 'stl', 'mtl', 'stl-kd', 'mtl-kd', 'moco-mtl', 'aligned-mtl', 'kf', 'lorkd', 'grow'];

/**
 * A batch sorted by task where it is made (the loader's plan): images in the model's memory format,
 * local/global labels, teacher-cache rows and the Routing, in one order; no consumer re-sorts.
 * Defined in the data layer (src/data/transforms.ts), where batches are made.
 */
import type { TaskBatch } from '../../data/transforms.js';
import type { StrategyOption } from '../../lorkd/strategies.js';
import type { ProcessGroup } from '../../dist/index.js';
export type { TaskBatch };

/** Parameter counts the paper's way (Tables 1 and 4): training = every trained network, without the foundation. */
export interface ParamCounts {
  params_training: number;
  params_deployment: number;
}

/** What a department runs: a plain network for one task, its logits over that task's classes. */
export interface DeployedNetwork {
  module: Module;
  forward(images: Tensor): Tensor;
  /** Writes the network to a file that `lorkd predict` / `lorkd transfer --from` read (with its preprocessing record). */
  save(file: string, meta: Record<string, string>): void;
  dispose(): void;
}

/**
 * How a method's training step runs its passes, given by the trainer: the forward under the run's
 * precision (autocast), and backward with the loss scaled for fp16 and handed to DDP's Reducer, so
 * that gradients are all-reduced while backward runs. A method that runs several backward passes
 * and rewrites the shared gradients (MoCo-MTL, Aligned-MTL) passes `overlap: false`; the trainer
 * then all-reduces once after.
 */
export interface TrainStep {
  forward<R>(fn: () => R): R;
  backward(loss: Tensor, o?: { retainGraph?: boolean; overlap?: boolean }): void;
}

/** A step with nothing around it: fp32, one process (tests and library callers). */
export const PLAIN_STEP: TrainStep = {
  forward: (fn) => fn(),
  backward: (loss, o) => loss.backward(undefined, o?.retainGraph ?? false),
};

export interface Method {
  readonly name: MethodName;
  /** logits(batch)[t] are over the suite's unified label space (the foundation's one head), not task t's classes. */
  readonly unifiedHead?: boolean;
  /** Everything trained and checkpointed (networks, heads, KD projections, ...). */
  readonly module: Module;
  /**
   * One training step's gradients: computes the loss of the batch, runs backward (possibly once per
   * task, e.g. MoCo-MTL and Aligned-MTL, which then rewrite the shared parameters' gradients) and
   * returns the scalar loss. The trainer zeroes gradients before and steps the optimiser after.
   */
  backward(batch: TaskBatch, step?: TrainStep): Tensor;
  /** Logits of each task's rows (null where the task has no rows), in eval mode, no grad. */
  logits(batch: TaskBatch): (Tensor | null)[];
  /** Parameter counts the paper's way. */
  params(): ParamCounts;
  /** The deployable network of task t (a new object; the caller disposes it). */
  deploy(task: number): DeployedNetwork;
  /** Recorded in checkpoints and results (e.g. the EKS strategy chosen, the KF TSN width). */
  describe(): Record<string, string | number>;
  /** LoRKD: the trained decomposition, kept as a checkpoint beside the deployed networks (its shared backbone is the paper's dagger). */
  readonly decomposition?: DecompositionModel;
  dispose(): void;
}

/**
 * Rows of a teacher-cache table, wherever it lives (a tensor on the device, or a file on disk read a
 * batch's rows at a time: teacher-rows.ts). `rows` returns float32 (B, width) on the device of
 * `rows`, in the current scope.
 */
export interface RowTable {
  readonly width: number;
  rows(rows: Tensor): Tensor;
  dispose(): void;
}

/** What a method is built from (the suite's tasks, the shared budget's architecture choices, the teacher). */
export interface MethodContext {
  tasks: { name: string; classNames: string[]; classOffset: number }[];
  /** Backbone name (shufflenet_v2_x1_0 for every method but the foundation). */
  model: string;
  inChannels: number;
  channelsLast: boolean;
  /** Knowledge distillation from the foundation (null: none; KD methods refuse to build without it). */
  kd: null | {
    mode: 'feature' | 'logits';
    alpha: number;
    beta: number;
    /** The teacher cache, rows addressed by TaskBatch.teacherRows: pooled features (N, F) standardised, unified logits (N, K). */
    features: RowTable;
    logits: RowTable;
  };
  /** LoRKD and grow: one rank, or one per task name. */
  rank?: RankSpec;
  loraAlpha?: number;
  /** LoRKD only: the EKS strategy (default auto). */
  strategy?: StrategyOption;
  /** Grow only: the trained decomposition file that learns the suite's tasks. */
  decomposition?: string;
  /** Data parallelism: the run's process group (LoRKD measures its auto strategy once and takes rank 0's choice). */
  group?: ProcessGroup | null;
}
