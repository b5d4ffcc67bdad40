// lorkd's optimizers, gradient clipping and learning-rate schedules.
export {
  Optimizer,
  type OptimizerOptions,
  type OptimizerStateDict,
  type GroupState,
  type HyperValue,
  type ParamGroup,
  type ParamGroupSpec,
  type ParamState,
} from './optimizer.js';
export { SGD, type SGDOptions } from './sgd.js';
export { AdamW, type AdamWOptions } from './adamw.js';
export { clipGradNorm, type ClipGradNormOptions } from './clip.js';
export { LRScheduler, type LrGroups, type SchedulerStateDict } from './lr-scheduler.js';
export { CosineAnnealingLR, type CosineAnnealingOptions } from './cosine-annealing.js';
export { StepLR, type StepLROptions } from './step-lr.js';
export { LinearWarmup, type LinearWarmupOptions } from './linear-warmup.js';
export { GradScaler, type GradScalerOptions, type GradScalerState } from './grad-scaler.js';
