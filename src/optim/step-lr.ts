// Step decay, torch.optim.lr_scheduler.StepLR's closed form: lr(e) = baseLr * gamma^floor(e / stepSize).
import { LRScheduler, checkNumber, type LrGroups } from './lr-scheduler.js';

export interface StepLROptions {
  /** Epochs between decays. */
  stepSize: number;
  /** The decay factor (default 0.1). */
  gamma?: number;
}

export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;

  constructor(optimizer: LrGroups, options: StepLROptions) {
    super(optimizer);
    this.stepSize = checkNumber('StepLR', 'stepSize', options.stepSize, (x) => Number.isInteger(x) && x > 0, 'an integer > 0');
    this.gamma = checkNumber('StepLR', 'gamma', options.gamma ?? 0.1, (x) => x >= 0, 'a number >= 0');
    this.apply();
  }

  lrOf(epoch: number, baseLr: number): number {
    return baseLr * this.gamma ** Math.floor(epoch / this.stepSize);
  }
}
