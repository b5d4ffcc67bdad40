// MoCo-MTL (Fernando et al., ICLR 2023; LibMTL weighting/MoCo.py): MTL whose shared gradient is
// y^T lambda, with y tracking the normalised, loss-scaled task gradients and lambda the task
// weights (see mocoStep). The state lives in the network as `moco.y`, `moco.lambda`, `moco.step`,
// so checkpoints carry it and a resumed run continues exactly.
import type { Method, MethodContext } from './method.js';
import type { MethodSpec } from './spec.js';
import { PLAIN_BACKBONE } from './stl.js';
import { MocoState, mocoStep, gradientTransformMethod, MOCO_DEFAULTS, type MocoOptions } from './shared-gradients.js';

export function createMocoMtl(ctx: MethodContext, opts: Partial<MocoOptions> = {}): Method {
  const o = { ...MOCO_DEFAULTS, ...opts };
  return gradientTransformMethod('moco-mtl', ctx, (net, shared) => {
    const dim = shared.reduce((s, p) => s + p.numel, 0);
    const state = net.registerModule('moco', new MocoState(net.numTasks, dim, shared[0]!.dtype));
    return {
      transform: (G, losses, present) => mocoStep(state, G, losses, o, present),
      describe: { moco_beta: o.beta, moco_beta_sigma: o.betaSigma, moco_gamma: o.gamma, moco_gamma_sigma: o.gammaSigma, moco_rho: o.rho },
    };
  });
}

export const MOCO_MTL: MethodSpec = { name: 'moco-mtl', label: 'MoCo-MTL', ...PLAIN_BACKBONE, backward: 'per-task', create: (ctx) => createMocoMtl(ctx) };
