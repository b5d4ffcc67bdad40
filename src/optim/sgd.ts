// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay,
// with torch.optim.SGD's semantics (PyTorch 1.13):
//   d = grad + weightDecay * p
//   buf = d (first step, a copy) | momentum * buf + (1 - dampening) * d
//   d = nesterov ? d + momentum * buf : buf          (when momentum != 0)
//   p = p - lr * d
import { Tensor } from '../tensor/tensor.js';
import { keep, tidy } from '../tensor/scope.js';
import { noGrad } from '../tensor/creation.js';
import { foreachAdd_, foreachMul_ } from '../tensor/functional.js';
import { UserError } from '../tensor/errors.js';
import { Optimizer, withDefaults, type OptimizerOptions, type ParamGroup, type ParamGroupSpec } from './optimizer.js';

export interface SGDOptions extends OptimizerOptions {
  /** Momentum factor (default 0: plain SGD). */
  momentum: number;
  /** Dampening of the gradient in the momentum buffer, from the second step on (default 0). */
  dampening: number;
  /** Nesterov momentum (needs momentum > 0 and dampening 0; default false). */
  nesterov: boolean;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay: number;
}

type SGDState = { momentum_buffer: Tensor };

/** torch.optim.SGD. Parameters without a gradient are skipped. */
export class SGD extends Optimizer<SGDOptions, SGDState> {
  protected readonly scalarStateKeys: readonly string[] = [];
  protected readonly tensorStateKeys: readonly string[] = ['momentum_buffer'];

  /** @param options `lr` is required; the rest default to 0 / false. */
  constructor(params: Tensor[] | ParamGroupSpec<SGDOptions>[], options: Partial<SGDOptions> & { lr: number }) {
    super(params, withDefaults('SGD', { lr: options.lr, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0 }, options));
  }

  protected validateGroup(g: ParamGroup<SGDOptions>): void {
    const num = (k: 'lr' | 'momentum' | 'dampening' | 'weightDecay') => {
      const v = g[k];
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new UserError(`SGD: ${k} must be a finite number >= 0, got ${v}`);
    };
    num('lr');
    num('momentum');
    num('dampening');
    num('weightDecay');
    if (typeof g.nesterov !== 'boolean') throw new UserError(`SGD: nesterov must be a boolean, got ${g.nesterov}`);
    if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) throw new UserError('SGD: Nesterov momentum requires a momentum > 0 and zero dampening');
  }

  protected requiredStateKeys(): string[] {
    return ['momentum_buffer'];
  }

  step(): void {
    noGrad(() =>
      tidy(() => {
        for (const g of this.paramGroups) this.#stepGroup(g);
      }),
    );
  }

  #stepGroup(g: ParamGroup<SGDOptions>): void {
    const params: Tensor[] = [];
    const grads: Tensor[] = [];
    for (const p of g.params) {
      const grad = p.grad;
      if (grad !== null) {
        params.push(p);
        grads.push(grad);
      }
    }
    if (params.length === 0) return;
    const { lr, momentum, dampening, nesterov, weightDecay } = g;
    // d = grad + weightDecay * p. It is computed in the parameter's workspace (never in .grad)
    // when it differs from the gradient or Nesterov adds to it; no allocation after the first step.
    const own = weightDecay !== 0 || (momentum !== 0 && nesterov);
    let d = grads;
    if (own) {
      d = params.map((p, i) => this.workspace(p).copy_(grads[i]!));
      if (weightDecay !== 0) foreachAdd_(d, params, weightDecay);
    }
    let update = d;
    if (momentum !== 0) {
      const bufs: Tensor[] = [];
      const old: Tensor[] = [];
      const oldD: Tensor[] = [];
      params.forEach((p, i) => {
        const s = this.state.get(p);
        if (s === undefined) {
          const buf = keep(d[i]!.clone()); // first step: the buffer is a copy of d
          this.state.set(p, { momentum_buffer: buf });
          bufs.push(buf);
        } else {
          old.push(s.momentum_buffer);
          oldD.push(d[i]!);
          bufs.push(s.momentum_buffer);
        }
      });
      if (old.length) {
        foreachMul_(old, momentum);
        foreachAdd_(old, oldD, 1 - dampening);
      }
      if (nesterov) foreachAdd_(d, bufs, momentum); // d is the workspace here
      else update = bufs;
    }
    foreachAdd_(params, update, -lr);
  }
}
