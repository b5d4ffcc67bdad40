// Learning-rate schedulers: the base class. Every schedule is a closed form lr(epoch, baseLr),
// so resuming needs only the epoch counter, and lrAt() can print or plot a whole schedule.
import { UserError } from '../tensor/errors.js';

/** What a scheduler needs from an optimizer: parameter groups with a mutable `lr`. */
export interface LrGroups {
  readonly paramGroups: { lr: number }[];
}

/** A scheduler's state for a checkpoint (JSON). */
export interface SchedulerStateDict {
  /** The scheduler's class name (checked on load). */
  kind: string;
  /** Epochs stepped so far (0 right after construction). */
  lastEpoch: number;
  /** Each group's learning rate at epoch 0. */
  baseLrs: number[];
}

/**
 * The base of the schedulers, after torch.optim.lr_scheduler. Construction sets each group's
 * lr to its epoch-0 value (the base lr is the group's lr at construction); `step()` once per
 * epoch advances the epoch and sets the groups' lr.
 */
export abstract class LRScheduler {
  /** The epoch whose learning rates are in effect. */
  lastEpoch = 0;
  /** Each group's lr at epoch 0. */
  baseLrs: number[];
  #lastLr: number[] = [];

  constructor(readonly optimizer: LrGroups) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.lr);
  }

  /** The learning rate of a group with base lr `baseLr` at `epoch` (the closed form). */
  abstract lrOf(epoch: number, baseLr: number): number;

  /** Each group's learning rate at `epoch` (does not change anything). */
  lrAt(epoch: number): number[] {
    return this.baseLrs.map((b) => this.lrOf(epoch, b));
  }

  /** Sets each group's lr to its value at lastEpoch; subclasses call it at the end of their constructor. */
  protected apply(): void {
    const lrs = this.lrAt(this.lastEpoch);
    if (lrs.length !== this.optimizer.paramGroups.length) {
      throw new UserError(`${this.constructor.name}: the optimizer has ${this.optimizer.paramGroups.length} parameter groups, the scheduler ${lrs.length}`);
    }
    lrs.forEach((lr, i) => (this.optimizer.paramGroups[i]!.lr = lr));
    this.#lastLr = lrs;
  }

  /** Advances one epoch and sets each group's learning rate. */
  step(): void {
    this.lastEpoch += 1;
    this.apply();
  }

  /** The learning rates the last step (or the construction) set, one per group. */
  getLastLr(): number[] {
    return this.#lastLr.slice();
  }

  stateDict(): SchedulerStateDict {
    return { kind: this.constructor.name, lastEpoch: this.lastEpoch, baseLrs: this.baseLrs.slice() };
  }

  /** Restores the epoch and base learning rates, and sets the groups' lr accordingly. */
  loadStateDict(s: SchedulerStateDict): void {
    const cls = this.constructor.name;
    if (s === null || typeof s !== 'object') throw new UserError(`${cls}.loadStateDict: expected an object`);
    if (s.kind !== cls) throw new UserError(`${cls}.loadStateDict: the state is of a ${s.kind}`);
    if (!Number.isInteger(s.lastEpoch) || s.lastEpoch < 0) throw new UserError(`${cls}.loadStateDict: lastEpoch must be an integer >= 0, got ${s.lastEpoch}`);
    if (!Array.isArray(s.baseLrs) || s.baseLrs.length !== this.optimizer.paramGroups.length || !s.baseLrs.every((x) => typeof x === 'number')) {
      throw new UserError(`${cls}.loadStateDict: baseLrs must hold one number per parameter group (${this.optimizer.paramGroups.length})`);
    }
    this.lastEpoch = s.lastEpoch;
    this.baseLrs = s.baseLrs.slice();
    this.apply();
  }
}

/** Throws a UserError unless v is a finite number satisfying ok. */
export function checkNumber(cls: string, name: string, v: unknown, ok: (x: number) => boolean, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new UserError(`${cls}: ${name} must be ${what}, got ${v}`);
  return v;
}
