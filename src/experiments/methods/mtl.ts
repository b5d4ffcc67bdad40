// MTL and MTL-KD (docs/ARCHITECTURE.md "Methods"): one shared backbone with a head per task, trained on
// mixed batches with the sum of the per-task CE (1/B, as LoRKD), plus LoRKD's transfer loss for
// MTL-KD. One deployed network per task: the backbone with that task's head.
import { Linear } from '../../nn/linear.js';
import type { Method, MethodContext } from './method.js';
import type { MethodSpec } from './spec.js';
import { PLAIN_BACKBONE, DISTILLED_BACKBONE } from './stl.js';
import { MultiTaskNet, classifierDeployment } from './multi-task-net.js';
import { Bundle, evalNoGrad, requireKd } from './common.js';
import { singleNetworkBackward } from './kd.js';

export function createMtl(ctx: MethodContext, o: { kd: boolean } = { kd: false }): Method {
  const name = o.kd ? 'mtl-kd' : 'mtl';
  const kd = o.kd ? requireKd(name, ctx) : null;
  const net = new MultiTaskNet(ctx);
  if (ctx.channelsLast) net.toChannelsLast();
  const projection = kd?.mode === 'feature' ? new Linear(kd.features.width, net.numFeatures) : null;
  const module = new Bundle({ net, projection });
  const shared = net.sharedParameters().reduce((s, p) => s + p.numel, 0);
  const forward = (b: Parameters<Method['backward']>[0]) => {
    const features = net.forward(b.images);
    return { features, logits: net.headLogits(features, b.routing) };
  };
  return {
    name,
    module,
    backward: singleNetworkBackward(kd, ctx.tasks, forward, projection),
    logits: (batch) => evalNoGrad(net, () => forward(batch).logits),
    params: () => ({ params_training: shared, params_deployment: shared }),
    deploy: (t) => classifierDeployment(net.deploy(t), ctx.model, ctx.tasks[t]!, ctx.inChannels),
    describe: () => ({ method: name, ...(kd ? { kd: kd.mode, alpha: kd.alpha, beta: kd.beta } : {}) }),
    dispose: () => module.dispose(),
  };
}

export const createMtlKd = (ctx: MethodContext): Method => createMtl(ctx, { kd: true });

export const MTL: MethodSpec = { name: 'mtl', label: 'MTL', ...PLAIN_BACKBONE, create: (ctx) => createMtl(ctx) };
export const MTL_KD: MethodSpec = { name: 'mtl-kd', label: 'MTL-KD', ...DISTILLED_BACKBONE, create: createMtlKd };
