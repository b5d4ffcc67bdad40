// The one epoch loop of every training command (foundation, decompose, run, compare, transfer):
// per-step tidy, NaN/inf guard, progress, a resumable checkpoint after every epoch (atomic),
// validation, early stopping, best weights. It is told everything it needs (the method, optimiser,
// process group); it reads no globals. It drives a Method through its TrainStep (methods/method.ts):
// the forward under the run's precision, backward with DDP's Reducer overlapping the all-reduce.
import { performance } from 'node:perf_hooks';
import type { Optimizer } from '../optim/optimizer.js';
import type { LRScheduler } from '../optim/lr-scheduler.js';
import type { DataLoader, SortedBatch } from '../data/index.js';
import { tidy, noGrad, autocast, type Precision } from '../tensor/index.js';
import { GradScaler } from '../optim/grad-scaler.js';
import { UserError } from '../tensor/errors.js';
import { saveSafetensors, loadSafetensors } from '../io/safetensors.js';
import type { RunDir } from './run-dir.js';
import { saveTrainState, loadTrainState } from './train-state.js';
import type { Progress } from './progress.js';
import type { Method, TrainStep } from './methods/method.js';
import { type ProcessGroup, DistributedDataParallel, collectiveError } from '../dist/index.js';
import type { Module } from '../nn/module.js';

/** Data parallelism of a run (lorkd launch): the process group, and SyncBatchNorm in every rank. */
export interface DataParallel {
  group: ProcessGroup;
  syncBn: boolean;
  /** false: one all-reduce after backward instead of DDP's Reducer while it runs (default true; for measuring the overlap). */
  overlap?: boolean;
}

export interface EpochRecord {
  epoch: number;
  loss: number;
  val: number | null;
  lr: number;
  seconds: number;
  img_per_s: number;
}

export interface TrainerOptions {
  /** File prefix in the run directory, e.g. "foundation". */
  name: string;
  run: RunDir;
  /** What is trained: its module (everything trained and checkpointed) and its backward. */
  method: Pick<Method, 'module' | 'backward'>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  optimizer: Optimizer<any, any>;
  scheduler: LRScheduler | null;
  loader: DataLoader;
  epochs: number;
  resume: boolean;
  /**
   * Also write the resumable checkpoint every this many steps inside an epoch (default 0: at the
   * end of each epoch only). A run resumed from such a checkpoint continues at the next step of the
   * same epoch and ends equal to an uninterrupted run.
   */
  checkpointSteps?: number;
  /** Data parallelism (null or absent: one process). */
  dist?: DataParallel | null;
  /** The device the method's parameters and the loader's batches are on (default 'cpu'). */
  device?: string;
  /** Autocast precision of the forward passes (default fp32); fp16 scales the loss (GradScaler). */
  precision?: Precision;
  /** Validation metric, higher is better (model in eval mode, no grad). */
  validate?: () => number;
  /** Stop when validation has not improved for this many epochs (default: never). */
  patience?: number;
  progress: Progress;
}

export interface TrainResult {
  history: EpochRecord[];
  bestEpoch: number;
  bestVal: number | null;
  stoppedEarly: boolean;
  /** Epochs trained by this call (0 when a resumed run was already complete). */
  epochsRun: number;
  /** Data parallelism: this call's steps whose gradients were all-reduced while backward ran (DDP's Reducer), and once after it. */
  allReduce: { overlapped: number; afterBackward: number } | null;
}

interface Extra {
  history: EpochRecord[];
  bestEpoch: number;
  bestVal: number | null;
  stoppedEarly: boolean;
  /** A checkpoint inside an epoch: the loss sum and images seen by its steps so far. */
  partial?: { sum: number; seen: number };
}

/** The name of the first parameter holding a NaN or an infinity, or null. */
export function nonFiniteParameter(model: Module): string | null {
  for (const [name, p] of model.namedParameters()) {
    if (!noGrad(() => tidy(() => p.isfinite().all().item() !== 0))) return name;
  }
  return null;
}

/** Lets Node run pending native finalizers (disposed tensor wrappers); see tensor-memory tests. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function train(o: TrainerOptions): Promise<TrainResult> {
  const model: Module = o.method.module;
  const ckpt = `${o.name}.ckpt.safetensors`;
  const best = `${o.name}.best.safetensors`;
  let extra: Extra = { history: [], bestEpoch: -1, bestVal: null, stoppedEarly: false };
  const device = o.device ?? 'cpu';
  const precision = o.precision ?? 'fp32';
  // fp16 gradients underflow without loss scaling; bf16 has float32's range and needs none.
  const scaler = new GradScaler({ enabled: precision === 'fp16' });
  let start = 0;
  // Steps already done in the first epoch of this call (a checkpoint written inside an epoch).
  let skip = 0;
  if (o.resume && o.run.has(ckpt)) {
    const s = loadTrainState(o.run.file(ckpt), model, o.optimizer, o.scheduler);
    extra = s.extra as unknown as Extra;
    if (scaler.enabled && s.extra.grad_scaler) scaler.loadStateDict(s.extra.grad_scaler as Parameters<GradScaler['loadStateDict']>[0]);
    start = s.epoch + 1;
    skip = s.step ?? 0;
    o.progress.log(skip > 0 ? `[${o.name}] resuming epoch ${start + 1}/${o.epochs} at step ${skip + 1}` : `[${o.name}] resuming after epoch ${s.epoch + 1}/${o.epochs}`);
  }
  const every = o.checkpointSteps ?? 0;
  if (!(Number.isInteger(every) && every >= 0)) throw new UserError(`checkpoint interval must be a non-negative number of steps, got ${every}`);
  // Data parallelism (lorkd launch, docs/DISTRIBUTED.md): every rank starts from rank 0's state,
  // gradients are averaged by c10d (DDP's Reducer while backward runs, or one bucketed
  // all-reduce after a method's several backward passes), BatchNorm buffers follow rank 0.
  const group = o.dist?.group ?? null;
  const ddp = o.dist ? new DistributedDataParallel(model, o.dist.group, { syncBn: o.dist.syncBn }) : null;
  // Images per second of the whole run: every rank trains its share of each global batch.
  const world = group?.worldSize ?? 1;
  let epochsRun = 0;
  const allReduce = ddp ? { overlapped: 0, afterBackward: 0 } : null;
  for (let epoch = start; epoch < o.epochs && !extra.stoppedEarly; epoch++) {
    model.train();
    const t0 = performance.now();
    let sum = extra.partial?.sum ?? 0;
    let seen = extra.partial?.seen ?? 0;
    let step = skip;
    delete extra.partial;
    skip = 0;
    o.progress.start(`[${o.name}] epoch ${epoch + 1}/${o.epochs}`, o.loader.numBatches);
    for (const batch of o.loader.epoch(epoch, step)) {
      try {
        const l = tidy(() => {
          o.optimizer.zeroGrad();
          ddp?.syncBuffers();
          let reduced = false;
          const passes: TrainStep = {
            forward: (fn) => autocast(device, precision, fn),
            backward: (unscaled, so) => {
              const loss = scaler.scale(unscaled);
              if (ddp && o.dist?.overlap !== false && so?.overlap !== false) {
                ddp.beforeBackward(loss);
                reduced = true;
              }
              loss.backward(undefined, so?.retainGraph ?? false);
              if (loss !== unscaled) loss.dispose();
            },
          };
          const loss = o.method.backward(batch, passes);
          const v = loss.item();
          if (!Number.isFinite(v)) {
            const last = epoch > 0 ? `the checkpoint of epoch ${epoch} is kept in ${o.run.file(ckpt)}` : 'no checkpoint was written yet';
            throw new UserError(`[${o.name}] loss became ${v} at epoch ${epoch + 1}, step ${step + 1}; stopping (${last})`);
          }
          if (ddp && !reduced) ddp.allReduceGradients();
          if (allReduce) allReduce[reduced ? 'overlapped' : 'afterBackward']++;
          scaler.step(o.optimizer);
          scaler.update();
          return v;
        });
        sum += l * batch.size;
        seen += batch.size;
      } catch (e) {
        throw group ? collectiveError(e, group.rank, group.env.timeoutS) : e;
      } finally {
        batch.dispose();
      }
      step++;
      if (every > 0 && step % every === 0 && step < o.loader.numBatches) {
        const state = { ...extra, partial: { sum, seen }, ...(scaler.enabled ? { grad_scaler: scaler.stateDict() } : {}) };
        saveTrainState(o.run.file(ckpt), model, o.optimizer, o.scheduler, { epoch: epoch - 1, step, extra: state as unknown as Record<string, unknown> });
      }
      await yieldToEventLoop();
      const el = (performance.now() - t0) / 1000;
      o.progress.update(step, { loss: sum / seen, 'img/s': (seen * world) / el });
    }
    const seconds = (performance.now() - t0) / 1000;
    // The loss guard sees a blow-up only at the next step: check the weights the epoch ends with,
    // so a checkpoint is only ever written with finite weights.
    const last = epoch > 0 ? `the checkpoint of epoch ${epoch} is kept in ${o.run.file(ckpt)}` : 'no checkpoint was written yet';
    const bad = nonFiniteParameter(model);
    if (bad !== null) throw new UserError(`[${o.name}] weight ${bad} became non-finite (NaN or infinity) in epoch ${epoch + 1}; stopping (${last})`);
    const lr = o.optimizer.paramGroups[0]!.lr;
    o.scheduler?.step();
    let val: number | null = null;
    if (o.validate) {
      model.eval();
      try {
        val = noGrad(() => autocast(device, precision, () => o.validate!()));
      } catch (e) {
        // NaN outputs (the AUC refuses NaN scores) mean that training diverged.
        if (e instanceof UserError && /NaN/.test(e.message)) {
          throw new UserError(`[${o.name}] validation after epoch ${epoch + 1} failed (${e.message}): training diverged; stopping (${last})`);
        }
        throw e;
      }
      if (!Number.isFinite(val)) throw new UserError(`[${o.name}] validation after epoch ${epoch + 1} gave ${val}: training diverged; stopping (${last})`);
      model.train();
      if (extra.bestVal === null || val > extra.bestVal) {
        extra.bestVal = val;
        extra.bestEpoch = epoch;
        tidy(() => saveSafetensors(o.run.file(best), model.stateDict(), { lorkd_format: 'weights', epoch: String(epoch) }));
      } else if (o.patience !== undefined && epoch - extra.bestEpoch >= o.patience) {
        extra.stoppedEarly = true;
      }
    }
    extra.history.push({ epoch, loss: sum / Math.max(seen, 1), val, lr, seconds, img_per_s: (seen * world) / seconds });
    const state = { ...extra, ...(scaler.enabled ? { grad_scaler: scaler.stateDict() } : {}) };
    saveTrainState(o.run.file(ckpt), model, o.optimizer, o.scheduler, { epoch, extra: state as unknown as Record<string, unknown> });
    o.progress.stop(
      `[${o.name}] epoch ${epoch + 1}/${o.epochs} loss ${(sum / Math.max(seen, 1)).toFixed(4)}` +
        (val !== null ? ` val ${val.toFixed(4)}${extra.bestEpoch === epoch ? ' (best)' : ''}` : '') +
        ` ${((seen * world) / seconds).toFixed(0)} img/s ${seconds.toFixed(1)}s` +
        (extra.stoppedEarly ? ` (no improvement for ${o.patience} epochs: stopping)` : ''),
    );
    epochsRun++;
  }
  // Finish with the best validated weights.
  if (o.validate && o.run.has(best)) {
    const { tensors } = loadSafetensors(o.run.file(best));
    try {
      model.loadStateDict(tensors);
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  }
  // The Reducer's hooks and parameter references end with the run (compare trains many in one process).
  ddp?.dispose();
  return { history: extra.history, bestEpoch: extra.bestEpoch, bestVal: extra.bestVal, stoppedEarly: extra.stoppedEarly, epochsRun, allReduce };
}
