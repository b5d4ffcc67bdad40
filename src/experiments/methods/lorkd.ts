// LoRKD (paper 3): the decomposition model (shared backbone, rank-r experts in every
// non-depthwise conv, a head per task) trained on task-sorted batches with CE plus feature or
// logit KD from the foundation (or CE only without a teacher). State keys: `dm.<...>` and
// `projection.<...>`, as `lorkd decompose` checkpoints. Deployed: task t's fused expert, a plain
// torchvision-layout backbone (paper 3.4).
import { Linear } from '../../nn/linear.js';
import { DecompositionModel } from '../../lorkd/decomposition.js';
import { expertModel } from '../../lorkd/deploy.js';
import type { Method, MethodContext, TaskBatch } from './method.js';
import { kdOutputs, type MethodSpec } from './spec.js';
import { estimateDecomposition, suiteBytes } from '../resources.js';
import { classifierDeployment } from './multi-task-net.js';
import { Bundle, evalNoGrad, backboneParams } from './common.js';
import { rankLabel } from '../../lorkd/ranks.js';
import { singleNetworkBackward } from './kd.js';
import type { Strategy } from '../../lorkd/strategies.js';

export interface LorkdMethod extends Method {
  readonly dm: DecompositionModel;
  readonly projection: Linear | null;
}

export function createLorkd(ctx: MethodContext): LorkdMethod {
  const kd = ctx.kd;
  const dm = new DecompositionModel({
    model: ctx.model, tasks: ctx.tasks.map((t) => ({ name: t.name, classNames: t.classNames })), rank: ctx.rank ?? 8, loraAlpha: ctx.loraAlpha, strategy: ctx.strategy ?? 'auto', inChannels: ctx.inChannels,
  });
  if (ctx.channelsLast) dm.toChannelsLast();
  const projection = kd?.mode === 'feature' && kd.beta !== 0 ? new Linear(kd.features.width, dm.numFeatures) : null;
  const module = new Bundle({ dm, projection });
  const heads = dm.namedParameters().filter(([n]) => n.startsWith('heads.')).reduce((s, [, p]) => s + p.numel, 0);
  // Data parallelism: the auto strategy is measured once, on the first training batch, and rank
  // 0's choice is broadcast; every rank then runs it for the whole run (a value, not state on the model).
  let distributed: Strategy | null = null;
  const forward = (b: TaskBatch) => {
    const group = ctx.group;
    if (group && dm.config.strategy === 'auto' && dm.training) {
      // Every rank measures (in lockstep: with SyncBatchNorm the measured passes all-reduce), rank 0's choice wins.
      distributed ??= group.broadcastJson<Strategy>(dm.chooseStrategy(b.images, b.routing, true));
      return dm.forwardRouted(b.images, b.routing, distributed);
    }
    return dm.forwardRouted(b.images, b.routing);
  };
  return {
    name: 'lorkd',
    dm,
    decomposition: dm,
    projection,
    module,
    backward: singleNetworkBackward(kd, ctx.tasks, forward, projection),
    logits: (batch) => evalNoGrad(dm, () => forward(batch).logits),
    params: () => ({ params_training: dm.numParameters() - heads, params_deployment: backboneParams(ctx.model, ctx.inChannels) }),
    deploy: (t) => classifierDeployment(expertModel(dm, t).eval(), ctx.model, ctx.tasks[t]!, ctx.inChannels),
    describe: () => ({
      method: 'lorkd', rank: typeof dm.rank === 'number' ? dm.rank : rankLabel(dm.rank), kd: kd && kd.beta !== 0 ? kd.mode : 'none', ...(kd ? { alpha: kd.alpha, beta: kd.beta } : {}),
      strategy: distributed ? `${distributed} (rank 0, broadcast)` : dm.config.strategy === 'auto' ? dm.auto.measurements.map((m) => `${m.key}=${m.best}`).join(' ') || 'auto' : dm.config.strategy,
    }),
    dispose: () => module.dispose(),
  };
}

export const LORKD: MethodSpec = {
  name: 'lorkd', label: 'LoRKD', arch: 'backbone', teacher: (o) => kdOutputs(o, false), teacherRequired: false,
  flops: 'lorkd', backward: 'single', ranked: true, options: ['kd', 'alpha', 'beta', 'rank', 'loraAlpha', 'strategy'], create: createLorkd,
  memory: (o) =>
    estimateDecomposition({ model: o.model, classes: o.suite.tasks.map((t) => t.numClasses), rank: o.rank, batch: o.batch, input: o.input, dataBytes: suiteBytes(o.suite), trainImages: o.suite.split('train').n }),
};
