// Loss scaling for fp16 training, as torch.cuda.amp.GradScaler: the loss is multiplied by a
// scale S before backward so that small fp16 gradients do not flush to zero; step() divides the
// gradients by S and skips the optimiser step when any of them is inf or NaN; update() halves S
// after a skipped step and doubles it after `growthInterval` clean steps in a row.
// Disabled (bf16, fp32: `enabled: precision === 'fp16'`), every call passes through.
import { N } from '../tensor/ops-native.js';
import type { Tensor } from '../tensor/tensor.js';
import { UserError } from '../tensor/errors.js';
import type { Optimizer, OptimizerOptions } from './optimizer.js';

export interface GradScalerOptions {
  /** Initial scale (PyTorch: 2^16). */
  initScale?: number;
  /** Factor applied after growthInterval steps without inf/NaN (2.0). */
  growthFactor?: number;
  /** Factor applied after a step with inf/NaN (0.5). */
  backoffFactor?: number;
  /** Clean steps before the scale grows (2000). */
  growthInterval?: number;
  /** Off: scale() returns the loss, step() steps, update() does nothing (default true). */
  enabled?: boolean;
}

/** GradScaler's checkpoint entry, with PyTorch's keys. */
export interface GradScalerState {
  scale: number;
  growth_factor: number;
  backoff_factor: number;
  growth_interval: number;
  _growth_tracker: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyOptimizer = Optimizer<OptimizerOptions, any>;
type Stage = 'unscaled' | 'stepped';

export class GradScaler {
  readonly enabled: boolean;
  #scale: number;
  #growth: number;
  #backoff: number;
  #interval: number;
  #tracker = 0;
  /** Per optimiser since the last update(): unscaled (with found-inf) or stepped. */
  readonly #stage = new Map<AnyOptimizer, { stage: Stage; foundInf: boolean }>();

  constructor(o: GradScalerOptions = {}) {
    this.enabled = o.enabled ?? true;
    this.#scale = o.initScale ?? 2 ** 16;
    this.#growth = o.growthFactor ?? 2;
    this.#backoff = o.backoffFactor ?? 0.5;
    this.#interval = o.growthInterval ?? 2000;
    if (!(this.#scale > 0) || !Number.isFinite(this.#scale)) throw new UserError(`GradScaler: initScale must be a finite number > 0, got ${this.#scale}`);
    if (!(this.#growth > 1)) throw new UserError(`GradScaler: growthFactor must be > 1, got ${this.#growth}`);
    if (!(this.#backoff > 0 && this.#backoff < 1)) throw new UserError(`GradScaler: backoffFactor must be in (0, 1), got ${this.#backoff}`);
    if (!Number.isInteger(this.#interval) || this.#interval < 1) throw new UserError(`GradScaler: growthInterval must be an integer >= 1, got ${this.#interval}`);
  }

  /** The current scale (1 when disabled). */
  getScale(): number {
    return this.enabled ? this.#scale : 1;
  }

  /** loss * scale (a new tensor), to call backward() on; the loss itself when disabled. */
  scale(loss: Tensor): Tensor {
    return this.enabled ? loss.mul(this.#scale) : loss;
  }

  /**
   * Divides the optimiser's gradients by the scale in place (once per step; e.g. before gradient
   * clipping) and records whether any was inf or NaN.
   */
  unscale_(opt: AnyOptimizer): void {
    if (!this.enabled) return;
    const s = this.#stage.get(opt);
    if (s?.stage === 'unscaled') throw new UserError('GradScaler.unscale_() was already called on this optimizer since the last update()');
    if (s?.stage === 'stepped') throw new UserError('GradScaler.unscale_() is being called after step()');
    const grads: Tensor[] = [];
    for (const g of opt.paramGroups) for (const p of g.params) {
      const grad = p.grad;
      if (grad !== null) grads.push(grad);
    }
    try {
      const foundInf = N.ampUnscale_(grads.map((g) => g.handle), 1 / this.#scale) as boolean;
      this.#stage.set(opt, { stage: 'unscaled', foundInf });
    } finally {
      for (const g of grads) g.dispose();
    }
  }

  /** Unscales (unless done) and steps the optimiser unless a gradient was inf/NaN; returns whether it stepped. */
  step(opt: AnyOptimizer): boolean {
    if (!this.enabled) {
      opt.step();
      return true;
    }
    if (this.#stage.get(opt)?.stage === 'stepped') throw new UserError('GradScaler.step() has already been called since the last update()');
    if (!this.#stage.has(opt)) this.unscale_(opt);
    const s = this.#stage.get(opt)!;
    s.stage = 'stepped';
    if (s.foundInf) return false;
    opt.step();
    return true;
  }

  /** Adjusts the scale for the next step (after step() on every optimiser). */
  update(): void {
    if (!this.enabled) return;
    if (this.#stage.size === 0) throw new UserError('GradScaler.update(): no step() or unscale_() since the last update()');
    const foundInf = [...this.#stage.values()].some((s) => s.foundInf);
    if (foundInf) {
      this.#scale *= this.#backoff;
      this.#tracker = 0;
    } else if (++this.#tracker === this.#interval) {
      this.#scale *= this.#growth;
      this.#tracker = 0;
    }
    this.#stage.clear();
  }

  stateDict(): GradScalerState {
    return { scale: this.#scale, growth_factor: this.#growth, backoff_factor: this.#backoff, growth_interval: this.#interval, _growth_tracker: this.#tracker };
  }

  loadStateDict(s: GradScalerState): void {
    if (typeof s?.scale !== 'number' || !(s.scale > 0) || !Number.isInteger(s._growth_tracker) || s._growth_tracker < 0) {
      throw new UserError('GradScaler.loadStateDict: expected { scale > 0, _growth_tracker >= 0, ... }');
    }
    this.#scale = s.scale;
    this.#tracker = s._growth_tracker;
    this.#growth = s.growth_factor ?? this.#growth;
    this.#backoff = s.backoff_factor ?? this.#backoff;
    this.#interval = s.growth_interval ?? this.#interval;
  }
}
