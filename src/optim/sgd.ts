// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay,
// with torch.optim.SGD's semantics (PyTorch 1.13):
//   d = grad + weightDecay * p
//   buf = d (first step, a copy) | momentum * buf + (1 - dampening) * d
//   d = nesterov ? d + momentum * buf : buf          (when momentum != 0)
//   p = p - lr * d
import { Tensor } from '../tensor/tensor.js';
import { keep, tidy } from '../tensor/scope.js';
import { noGrad } from '../tensor/creation.js';
import { N } from '../tensor/ops-native.js';
import type { NativeHandle } from '../tensor/native.js';
import { UserError } from '../tensor/errors.js';
import { Optimizer, handles, withDefaults, type OptimizerOptions, type ParamGroup, type ParamGroupSpec } from './optimizer.js';

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
    // One native call for the group (optim.cc): d = grad + weightDecay * p is computed in the
    // parameter's workspace (never in .grad) when it differs from the gradient or Nesterov adds
    // to it; the first step's momentum buffers come back from it.
    const own = weightDecay !== 0 || (momentum !== 0 && nesterov);
    const bufs = params.map((p) => (momentum !== 0 ? (this.state.get(p)?.momentum_buffer.handle ?? null) : null));
    const work = own ? params.map((p) => this.workspace(p).handle) : grads.map((t) => t.handle);
    const created = N.sgdStep(handles(params), handles(grads), work, bufs, lr, momentum, dampening, nesterov, weightDecay) as (NativeHandle | null)[];
    created.forEach((h, i) => {
      if (h !== null) this.state.set(params[i]!, { momentum_buffer: keep(Tensor.wrap(h)) });
    });
  }
}
