// Aligned-MTL (Senushkin et al., CVPR 2023; LibMTL weighting/Aligned_MTL.py): MTL whose shared
// gradient is sum_t alpha_t g_t with the weights of alignedMtlMatrix, which make the task
// gradients' combination well conditioned. No hyper-parameters and no state.
import type { Method, MethodContext } from './method.js';
import type { MethodSpec } from './spec.js';
import { PLAIN_BACKBONE } from './stl.js';
import { alignedMtlWeights, combineRows, gradientTransformMethod } from './shared-gradients.js';

export function createAlignedMtl(ctx: MethodContext): Method {
  return gradientTransformMethod('aligned-mtl', ctx, () => ({
    transform: (G) => combineRows(G, alignedMtlWeights(G)),
    describe: {},
  }));
}

export const ALIGNED_MTL: MethodSpec = { name: 'aligned-mtl', label: 'Aligned-MTL', ...PLAIN_BACKBONE, backward: 'per-task', create: createAlignedMtl };
