// Adam with decoupled weight decay (Loshchilov & Hutter), with torch.optim.AdamW's semantics
// (PyTorch 1.13), per parameter at step t:
//   p = p * (1 - lr * weightDecay)
//   m = beta1 * m + (1 - beta1) * g;      v = beta2 * v + (1 - beta2) * g * g
//   vmax = max(vmax, v)                   (amsgrad; then v below means vmax)
//   p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
import { Tensor } from '../tensor/tensor.js';
import { keep, tidy } from '../tensor/scope.js';
import { noGrad, zerosLike } from '../tensor/creation.js';
import { N } from '../tensor/ops-native.js';
import { UserError } from '../tensor/errors.js';
import { Optimizer, handles, withDefaults, type OptimizerOptions, type ParamGroup, type ParamGroupSpec } from './optimizer.js';

export interface AdamWOptions extends OptimizerOptions {
  /** Decay rates of the first and second moment estimates (default [0.9, 0.999]). */
  betas: [number, number];
  /** Added to the denominator (default 1e-8). */
  eps: number;
  /** Decoupled weight decay: p is scaled by 1 - lr * weightDecay each step (default 1e-2). */
  weightDecay: number;
  /** The AMSGrad variant: divide by the running maximum of v (default false). */
  amsgrad: boolean;
}

type AdamWState = { step: number; exp_avg: Tensor; exp_avg_sq: Tensor; max_exp_avg_sq?: Tensor };

/** torch.optim.AdamW. Parameters without a gradient are skipped. */
export class AdamW extends Optimizer<AdamWOptions, AdamWState> {
  protected readonly scalarStateKeys: readonly string[] = ['step'];
  protected readonly tensorStateKeys: readonly string[] = ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'];

  /** @param options defaults: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 1e-2, amsgrad false. */
  constructor(params: Tensor[] | ParamGroupSpec<AdamWOptions>[], options: Partial<AdamWOptions> = {}) {
    super(params, withDefaults('AdamW', { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false } as AdamWOptions, options));
  }

  protected validateGroup(g: ParamGroup<AdamWOptions>): void {
    for (const k of ['lr', 'eps', 'weightDecay'] as const) {
      const v = g[k];
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new UserError(`AdamW: ${k} must be a finite number >= 0, got ${v}`);
    }
    const b = g.betas;
    if (!Array.isArray(b) || b.length !== 2 || !b.every((x) => typeof x === 'number' && x >= 0 && x < 1)) {
      throw new UserError(`AdamW: betas must be two numbers in [0, 1), got ${JSON.stringify(b)}`);
    }
    if (typeof g.amsgrad !== 'boolean') throw new UserError(`AdamW: amsgrad must be a boolean, got ${g.amsgrad}`);
  }

  protected requiredStateKeys(g: ParamGroup<AdamWOptions>): string[] {
    return g.amsgrad ? ['step', 'exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'] : ['step', 'exp_avg', 'exp_avg_sq'];
  }

  step(): void {
    noGrad(() =>
      tidy(() => {
        for (const g of this.paramGroups) this.#stepGroup(g);
      }),
    );
  }

  #stepGroup(g: ParamGroup<AdamWOptions>): void {
    const params: Tensor[] = [];
    const grads: Tensor[] = [];
    const states: AdamWState[] = [];
    for (const p of g.params) {
      const grad = p.grad;
      if (grad === null) continue;
      let s = this.state.get(p);
      if (s === undefined) {
        s = { step: 0, exp_avg: keep(zerosLike(p)), exp_avg_sq: keep(zerosLike(p)) };
        if (g.amsgrad) s.max_exp_avg_sq = keep(zerosLike(p));
        this.state.set(p, s);
      }
      s.step += 1;
      params.push(p);
      grads.push(grad);
      states.push(s);
    }
    if (params.length === 0) return;
    const { lr, eps, weightDecay, amsgrad } = g;
    const [beta1, beta2] = g.betas;
    if (amsgrad && states.some((s) => s.max_exp_avg_sq === undefined)) {
      throw new UserError('AdamW: amsgrad was switched on after training started (no max_exp_avg_sq state)');
    }
    // One native call for the group (optim.cc), per parameter:
    //   p *= 1 - lr * wd;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g g;  vmax = max(vmax, v)
    //   denom = sqrt(v) / sqrt(1 - beta2^t) + eps (in the parameter's workspace);  p -= lr / (1 - beta1^t) * m / denom
    N.adamwStep(
      handles(params),
      handles(grads),
      states.map((s) => s.exp_avg.handle),
      states.map((s) => s.exp_avg_sq.handle),
      amsgrad ? states.map((s) => s.max_exp_avg_sq!.handle) : null,
      params.map((p) => this.workspace(p).handle),
      states.map((s) => lr / (1 - beta1 ** s.step)),
      states.map((s) => Math.sqrt(1 - beta2 ** s.step)),
      lr,
      beta1,
      beta2,
      eps,
      weightDecay,
    );
    for (const grad of grads) grad.dispose();
  }
}
