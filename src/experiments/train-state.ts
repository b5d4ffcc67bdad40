// A resumable training checkpoint in one safetensors file: model weights (`model.<key>`),
// optimizer state (`optim.<key>`), libtorch's RNG state (`rng.cpu`); epoch, optimizer groups,
// scheduler state and caller extras in the metadata.
import { saveSafetensors, loadSafetensors } from '../io/safetensors.js';
import type { Module } from '../nn/module.js';
import type { Optimizer, OptimizerStateDict } from '../optim/optimizer.js';
import type { LRScheduler, SchedulerStateDict } from '../optim/lr-scheduler.js';
import { type Tensor, getRngState, setRngState, tidy } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { upgradeStackedTrainState } from './train-state-upgrade.js';

export interface TrainState {
  /** Last completed epoch (0-based; -1 when a checkpoint inside the first epoch). */
  epoch: number;
  /** Steps done inside the epoch after it (0: the checkpoint is at an epoch's end). */
  step?: number;
  extra: Record<string, unknown>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyOptimizer = Optimizer<any, any>;

export function saveTrainState(file: string, model: Module, optimizer: AnyOptimizer, scheduler: LRScheduler | null, state: TrainState): void {
  tidy(() => {
    const tensors = new Map<string, Tensor>();
    for (const [k, v] of model.stateDict()) tensors.set(`model.${k}`, v);
    const o: OptimizerStateDict = optimizer.stateDict();
    for (const [k, v] of o.tensors) tensors.set(`optim.${k}`, v);
    tensors.set('rng.cpu', getRngState());
    saveSafetensors(file, tensors, {
      lorkd_format: 'train-state',
      epoch: String(state.epoch),
      step: String(state.step ?? 0),
      optimizer_groups: JSON.stringify(o.groups),
      scheduler: JSON.stringify(scheduler?.stateDict() ?? null),
      extra: JSON.stringify(state.extra),
    });
  });
}

/** Loads the model part of a checkpoint into `model`, with a one-line UserError when it does not fit. */
function loadModelPart(file: string, tensors: Map<string, Tensor>, metadata: Record<string, string>, model: Module): void {
  if (metadata.lorkd_format !== 'train-state') throw new UserError(`${file} is not a lorkd training checkpoint`);
  const modelSd = new Map<string, Tensor>();
  for (const [k, v] of tensors) if (k.startsWith('model.')) modelSd.set(k.slice(6), v);
  try {
    model.loadStateDict(modelSd);
  } catch (e) {
    throw new UserError(`${file}: checkpoint does not fit this model: ${(e as Error).message}`);
  }
}

/**
 * Checks, before any expensive work, that the checkpoint in `file` fits `model` (a one-line
 * UserError otherwise). The model's weights are replaced by the checkpoint's.
 */
export function checkTrainState(file: string, model: Module): void {
  const { tensors, metadata } = loadSafetensors(file);
  try {
    // The split views of a checkpoint of earlier versions are freed with the scope.
    tidy(() => loadModelPart(file, upgradeStackedTrainState(model, tensors, metadata.optimizer_groups ?? '[]')?.tensors ?? tensors, metadata, model));
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/** Restores model, optimizer, scheduler and RNG; returns the epoch and extras. */
export function loadTrainState(file: string, model: Module, optimizer: AnyOptimizer, scheduler: LRScheduler | null): TrainState {
  const { tensors: stored, metadata } = loadSafetensors(file);
  try {
    // A checkpoint of earlier versions (stacked expert factors) is read in the current layout
    // (its split views are freed with the scope).
    return tidy(() => {
      const upgraded = upgradeStackedTrainState(model, stored, metadata.optimizer_groups ?? '[]');
      const tensors = upgraded?.tensors ?? stored;
      loadModelPart(file, tensors, metadata, model);
      const optimTensors = new Map<string, Tensor>();
      for (const [k, v] of tensors) if (k.startsWith('optim.')) optimTensors.set(k.slice(6), v);
      optimizer.loadStateDict({ groups: JSON.parse(upgraded?.groups ?? metadata.optimizer_groups ?? '[]'), tensors: optimTensors });
      const sched = JSON.parse(metadata.scheduler ?? 'null') as SchedulerStateDict | null;
      if (scheduler && sched) scheduler.loadStateDict(sched);
      const rng = tensors.get('rng.cpu');
      if (rng) setRngState(rng);
      return { epoch: Number(metadata.epoch), step: Number(metadata.step ?? 0), extra: JSON.parse(metadata.extra ?? '{}') as Record<string, unknown> };
    });
  } finally {
    for (const t of stored.values()) t.dispose();
  }
}
