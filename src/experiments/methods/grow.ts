// Grow (docs/GROW.md): a trained decomposition learns new tasks after it was deployed. One new
// low-rank expert per expert convolution and one new head per new task are trained on the frozen
// shared W0 and the frozen BatchNorm statistics (BatchNorm stays in eval mode); every existing
// expert, head, W0 and buffer keeps its bits. Optional KD from a teacher that knows the new tasks.
// The run's suite holds the new tasks only; they are routed to the decomposition's new task ids.
import { Linear } from '../../nn/linear.js';
import { BatchNorm2d } from '../../nn/index.js';
import { UserError } from '../../tensor/errors.js';
import type { DecompositionModel, RoutedOutput } from '../../lorkd/decomposition.js';
import { readDecomposition } from '../../lorkd/checkpoint.js';
import { expertModel } from '../../lorkd/deploy.js';
import { rankFor, rankLabel } from '../../lorkd/ranks.js';
import { Routing } from '../../data/routing.js';
import type { Method, MethodContext, TaskBatch } from './method.js';
import { kdOutputs, type MethodSpec } from './spec.js';
import { classifierDeployment } from './multi-task-net.js';
import { Bundle, evalNoGrad, backboneParams } from './common.js';
import { singleNetworkBackward } from './kd.js';

/** The method's module: the decomposition (BatchNorm always in eval mode) and the KD projection. */
class GrowBundle extends Bundle {
  constructor(readonly dm: DecompositionModel, projection: Linear | null) {
    super({ dm, projection });
  }
  /** Training mode for the new experts and heads; the shared BatchNorm statistics stay frozen. */
  override train(mode = true): this {
    super.train(mode);
    for (const m of this.dm.modules()) if (m instanceof BatchNorm2d) m.train(false);
    return this;
  }
}

/**
 * The refusals of a grow, in one line, before any training: a new task whose name the
 * decomposition has, and images whose channel count the backbone cannot take.
 */
export function checkGrow(dm: Pick<DecompositionModel, 'config'>, tasks: readonly { name: string }[], channels: number, file: string): void {
  const have = new Set(dm.config.tasks.map((t) => t.name));
  const clash = tasks.find((t) => have.has(t.name));
  if (clash) throw new UserError(`${file} already has a task "${clash.name}" (tasks: ${[...have].join(', ')}); give the new task another name or retire the old one first`);
  if (channels !== dm.config.inChannels) throw new UserError(`${file}: the backbone takes ${dm.config.inChannels}-channel images, the new task's are ${channels}-channel`);
}

export function createGrow(ctx: MethodContext): Method {
  const file = ctx.decomposition;
  if (!file) throw new UserError('method grow needs a trained decomposition: use lorkd grow --decomposition FILE');
  const dm = readDecomposition(file, { strategy: ctx.strategy ?? 'auto' }).model;
  const projection = ctx.kd?.mode === 'feature' && ctx.kd.beta !== 0 ? new Linear(ctx.kd.features.width, dm.numFeatures) : null;
  const module = new GrowBundle(dm, projection);
  try {
    if (dm.config.model !== ctx.model) throw new UserError(`${file} is a ${dm.config.model} decomposition, --model says ${ctx.model}`);
    checkGrow(dm, ctx.tasks, ctx.inChannels, file);
    const fallback = Math.max(...dm.config.tasks.map((t) => t.rank));
    for (const p of dm.parameters()) p.requiresGrad_(false);
    for (const t of ctx.tasks) {
      const rank = ctx.rank === undefined ? fallback : rankFor(ctx.rank, t.name);
      if (rank === undefined) throw new UserError(`--rank ${rankLabel(ctx.rank!)} gives no rank for the new task "${t.name}"`);
      dm.addTask({ name: t.name, classNames: t.classNames, rank, ...(ctx.loraAlpha !== undefined ? { loraAlpha: ctx.loraAlpha } : {}) });
    }
    if (ctx.channelsLast) dm.toChannelsLast();
  } catch (e) {
    module.dispose();
    throw e;
  }
  const first = dm.numTasks - ctx.tasks.length; // the new tasks' ids in the decomposition
  const trained = dm.namedParameters().filter(([, p]) => p.requiresGrad);
  const forward = (b: TaskBatch): RoutedOutput => {
    const routing = new Routing([...new Array<number>(first).fill(0), ...b.routing.counts]);
    try {
      const out = dm.forwardRouted(b.images, routing);
      return { features: out.features, logits: out.logits.slice(first) };
    } finally {
      routing.dispose();
    }
  };
  return {
    name: 'grow',
    module,
    decomposition: dm,
    backward: singleNetworkBackward(ctx.kd, ctx.tasks, forward, projection),
    logits: (batch) => evalNoGrad(module, () => forward(batch).logits),
    params: () => ({ params_training: trained.reduce((s, [, p]) => s + p.numel, 0), params_deployment: backboneParams(ctx.model, ctx.inChannels) }),
    deploy: (t) => classifierDeployment(expertModel(dm, first + t).eval(), ctx.model, ctx.tasks[t]!, ctx.inChannels),
    describe: () => ({
      method: 'grow', decomposition: file, base_tasks: dm.config.tasks.slice(0, first).map((t) => t.name).join(','),
      rank: ctx.tasks.map((t) => `${t.name}=${dm.config.tasks[dm.taskIndex(t.name)]!.rank}`).join(','),
      kd: ctx.kd && ctx.kd.beta !== 0 ? ctx.kd.mode : 'none',
    }),
    dispose: () => module.dispose(),
  };
}

export const GROW: MethodSpec = {
  name: 'grow', label: 'LoRKD grow', arch: 'backbone', teacher: (o) => kdOutputs(o, false), teacherRequired: false,
  flops: 'lorkd', backward: 'single', ranked: false, needsDecomposition: true, options: ['kd', 'alpha', 'beta', 'rank', 'loraAlpha', 'strategy'], create: createGrow,
};
