// Linear warm-up in front of another schedule (torch's SequentialLR of LinearLR and the schedule):
//   lr(e) = baseLr * (startFactor + (1 - startFactor) * e / epochs)   for e < epochs
//   lr(e) = after.lrOf(e - epochs, baseLr)                             afterwards
import { LRScheduler, checkNumber } from './lr-scheduler.js';

export interface LinearWarmupOptions {
  /** Warm-up length in epochs (or in steps, if step() is called per iteration). */
  epochs: number;
  /** The fraction of the base lr at epoch 0 (default 0.1; must be > 0 as in torch's LinearLR). */
  startFactor?: number;
}

/**
 * Wraps a schedule with a linear warm-up: `new LinearWarmup(new CosineAnnealingLR(opt, { tMax }), { epochs: 5 })`.
 * Step only the wrapper; the wrapped schedule starts at its epoch 0 when the warm-up ends.
 */
export class LinearWarmup extends LRScheduler {
  readonly epochs: number;
  readonly startFactor: number;

  constructor(readonly after: LRScheduler, options: LinearWarmupOptions) {
    super(after.optimizer);
    this.baseLrs = after.baseLrs.slice();
    this.epochs = checkNumber('LinearWarmup', 'epochs', options.epochs, (x) => Number.isInteger(x) && x >= 0, 'an integer >= 0');
    this.startFactor = checkNumber('LinearWarmup', 'startFactor', options.startFactor ?? 0.1, (x) => x > 0 && x <= 1, 'a number in (0, 1]');
    this.apply();
  }

  lrOf(epoch: number, baseLr: number): number {
    if (epoch >= this.epochs) return this.after.lrOf(epoch - this.epochs, baseLr);
    return baseLr * (this.startFactor + ((1 - this.startFactor) * epoch) / this.epochs);
  }
}
