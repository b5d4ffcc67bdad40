// STL and STL-KD (docs/ARCHITECTURE.md "Methods"): one backbone + head per task, each trained only on its
// own task's rows of the mixed batches (so over an epoch each sees exactly its task's data), plus
// LoRKD's transfer loss for STL-KD (one projection per network). Params: T backbones to train,
// one to deploy. A task with a single row in a batch is left out of that step: BatchNorm cannot
// train on one sample (the loader already merges a last batch of one sample into the one before).
import { Linear } from '../../nn/linear.js';
import { Sequential } from '../../nn/sequential.js';
import { type Tensor, cat } from '../../tensor/index.js';
import { UserError } from '../../tensor/errors.js';
import { PLAIN_STEP, type Method, type MethodContext, type TaskBatch } from './method.js';
import { kdOutputs, type KdSettings, type MethodSpec } from './spec.js';
import { MultiTaskNet, classifierDeployment } from './multi-task-net.js';
import { Bundle, evalNoGrad, requireKd } from './common.js';
import { methodLoss } from './kd.js';
import { Routing } from '../../data/routing.js';

export function createStl(ctx: MethodContext, o: { kd: boolean } = { kd: false }): Method {
  const name = o.kd ? 'stl-kd' : 'stl';
  const kd = o.kd ? requireKd(name, ctx) : null;
  const nets = ctx.tasks.map((t) => new MultiTaskNet({ tasks: [t], model: ctx.model, inChannels: ctx.inChannels }));
  if (ctx.channelsLast) nets.forEach((n) => n.toChannelsLast());
  const projections = kd?.mode === 'feature' ? ctx.tasks.map((_, t) => new Linear(kd.features.width, nets[t]!.numFeatures)) : null;
  const module = new Bundle({ nets: new Sequential(...nets), projections: projections ? new Sequential(...projections) : null });
  const one = nets[0]!.sharedParameters().reduce((s, p) => s + p.numel, 0);

  /** Features (rows of the used tasks, in batch order) and per-task logits; `use` says which tasks run. */
  const forward = (b: TaskBatch, use: (t: number) => boolean) => {
    const feats: Tensor[] = [];
    const logits = b.routing.counts.map((c, t) => {
      if (c === 0 || !use(t)) return null;
      const f = nets[t]!.forward(b.routing.slice(b.images, t));
      feats.push(f);
      return nets[t]!.head(0).forward(f);
    });
    return { features: feats.length === 1 ? feats[0]! : cat(feats, 0), logits };
  };
  return {
    name,
    module,
    backward(batch, step = PLAIN_STEP) {
      const use = (t: number) => batch.routing.counts[t]! > 1;
      if (!batch.routing.counts.some((_, t) => use(t))) throw new UserError(`${name}: no task has two rows in this batch (BatchNorm cannot train on one sample)`);
      // The rows that take part, as their own task batch (labels and teacher rows sliced alike).
      const counts = batch.routing.counts.map((c, t) => (use(t) ? c : 0));
      const keep = (x: Tensor) => cat(batch.routing.present().filter(use).map((t) => batch.routing.slice(x, t)), 0);
      const sub: TaskBatch = counts.every((c, t) => c === batch.routing.counts[t])
        ? batch
        : { ...batch, routing: new Routing(counts), local: keep(batch.local), global: keep(batch.global), teacherRows: batch.teacherRows && keep(batch.teacherRows), size: counts.reduce((a, b) => a + b, 0) };
      const project = projections
        ? (teacher: Tensor) => cat(sub.routing.present().map((t) => projections[t]!.forward(sub.routing.slice(teacher, t))), 0)
        : null;
      const loss = step.forward(() => methodLoss(kd, forward(batch, use), sub, ctx.tasks, project));
      step.backward(loss);
      if (sub !== batch) sub.routing.dispose();
      return loss;
    },
    logits: (batch) => evalNoGrad(module, () => forward(batch, () => true).logits),
    params: () => ({ params_training: one * ctx.tasks.length, params_deployment: one }),
    deploy: (t) => classifierDeployment(nets[t]!.deploy(0), ctx.model, ctx.tasks[t]!, ctx.inChannels),
    describe: () => ({ method: name, networks: ctx.tasks.length, ...(kd ? { kd: kd.mode, alpha: kd.alpha, beta: kd.beta } : {}) }),
    dispose: () => [...nets, ...(projections ?? [])].forEach((m) => m.dispose()),
  };
}

export const createStlKd = (ctx: MethodContext): Method => createStl(ctx, { kd: true });

const plain = { arch: 'backbone', teacher: () => [], teacherRequired: false, flops: 'backbone', backward: 'single', ranked: false, options: [] } as const;
const distilled = { ...plain, teacher: (o: KdSettings) => kdOutputs(o, true), teacherRequired: true, options: ['kd', 'alpha', 'beta'] } as const;

export const STL: MethodSpec = { name: 'stl', label: 'STL', ...plain, create: (ctx) => createStl(ctx) };
export const STL_KD: MethodSpec = { name: 'stl-kd', label: 'STL-KD', ...distilled, create: createStlKd };
export { plain as PLAIN_BACKBONE, distilled as DISTILLED_BACKBONE };
