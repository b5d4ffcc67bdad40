// Cosine annealing (SGDR without restarts), torch.optim.lr_scheduler.CosineAnnealingLR's closed form:
//   lr(e) = etaMin + (baseLr - etaMin) * (1 + cos(pi * e / tMax)) / 2
import { LRScheduler, checkNumber, type LrGroups } from './lr-scheduler.js';

export interface CosineAnnealingOptions {
  /** Epochs from the base lr down to etaMin (past it the cosine climbs again, as PyTorch's). */
  tMax: number;
  /** The lowest learning rate (default 0). */
  etaMin?: number;
}

export class CosineAnnealingLR extends LRScheduler {
  readonly tMax: number;
  readonly etaMin: number;

  constructor(optimizer: LrGroups, options: CosineAnnealingOptions) {
    super(optimizer);
    this.tMax = checkNumber('CosineAnnealingLR', 'tMax', options.tMax, (x) => x > 0, 'a number > 0');
    this.etaMin = checkNumber('CosineAnnealingLR', 'etaMin', options.etaMin ?? 0, (x) => x >= 0, 'a number >= 0');
    this.apply();
  }

  lrOf(epoch: number, baseLr: number): number {
    return this.etaMin + ((baseLr - this.etaMin) * (1 + Math.cos((Math.PI * epoch) / this.tMax))) / 2;
  }
}
