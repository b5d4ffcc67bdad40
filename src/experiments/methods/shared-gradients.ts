// Gradient-level multi-task baselines (METHOD.md, "Baselines, concretely"): MoCo-MTL and
// Aligned-MTL act on the gradients of the shared backbone only. Each step runs one backward per
// task (the graph is kept between them), flattens the shared gradients into G (T x D), combines G
// into one shared gradient and writes it back into `.grad`; each head keeps its own task's
// gradient (only task t's loss reaches head t). The combinations are pure functions of G (and,
// for MoCo, of its state), tested against the formulas.
//
// Task t's loss is L_t = (1/B) sum over the batch's rows of task t of CE, so that sum_t L_t is
// exactly MTL's loss (the same 1/B normalisation as LoRKD's) and the reported loss compares.
import { Module } from '../../nn/module.js';
import { type Tensor, tensor, zeros, full, zerosLike, cat, mm, softmax, crossEntropy, noGrad, tidy } from '../../tensor/index.js';
import { UserError } from '../../tensor/errors.js';
import type { DType } from '../../tensor/dtype.js';
import { symmetricEigen } from './eigen.js';
import { evalNoGrad } from './common.js';
import { MultiTaskNet, classifierDeployment } from './multi-task-net.js';
import { PLAIN_STEP, type Method, type MethodContext, type MethodName, type TaskBatch, type TrainStep } from './method.js';

// ------------------------------------------------------------------ MoCo-MTL (Fernando et al., ICLR 2023)
export interface MocoOptions {
  /** Step size of the tracking variable y, decayed as beta / step^betaSigma. */
  beta: number;
  betaSigma: number;
  /** Step size of the task weights lambda, decayed as gamma / step^gammaSigma. */
  gamma: number;
  gammaSigma: number;
  /** Ridge on y y^T in the lambda update. */
  rho: number;
}
export const MOCO_DEFAULTS: Readonly<MocoOptions> = { beta: 0.5, betaSigma: 0.5, gamma: 0.1, gammaSigma: 0.5, rho: 0 };

/**
 * MoCo's state, as buffers so that it is checkpointed with the network and a resumed run
 * continues exactly: `y` (T x D, zeros), `lambda` (T, 1/T) and `step` (int64, 0).
 */
export class MocoState extends Module {
  constructor(tasks: number, dim: number, dtype: DType = 'float32') {
    super();
    if (!(Number.isInteger(tasks) && tasks > 0 && Number.isInteger(dim) && dim > 0)) throw new UserError(`MoCo state: bad size ${tasks} x ${dim}`);
    this.registerBuffer('y', zeros([tasks, dim], { dtype }));
    this.registerBuffer('lambda', full([tasks], 1 / tasks, { dtype }));
    this.registerBuffer('step', zeros([], { dtype: 'int64' }));
  }
  get y(): Tensor {
    return this.getBuffer('y');
  }
  get lambda(): Tensor {
    return this.getBuffer('lambda');
  }
  get step(): number {
    return this.getBuffer('step').item();
  }
  override forward(): Tensor {
    throw new Error('MocoState holds state; see mocoStep');
  }
}

/**
 * One MoCo step. G: (P, D) gradients of the shared parameters, row i for task present[i] (default:
 * every task, in order); losses: L_t of those tasks. Updates `state` in place and returns the
 * shared gradient y^T lambda (D), in y's dtype:
 *   step <- step + 1; g_t <- g_t / (||g_t|| + 1e-8) * L_t;
 *   y_t <- y_t - (beta / step^betaSigma) (y_t - g_t) for the present tasks (an absent task's
 *   tracked gradient is kept, as it got no new measurement);
 *   lambda <- softmax(lambda - (gamma / step^gammaSigma) (y y^T + rho I) lambda).
 */
export function mocoStep(state: MocoState, G: Tensor, losses: readonly number[], opts: Partial<MocoOptions> = {}, present?: readonly number[]): Tensor {
  const o = { ...MOCO_DEFAULTS, ...opts };
  const [T, D] = state.y.shape as [number, number];
  const rows = present ?? [...Array(T).keys()];
  if (G.ndim !== 2 || G.size(0) !== rows.length || G.size(1) !== D) throw new UserError(`mocoStep: G must be ${rows.length} x ${D}, got [${G.shape.join(', ')}]`);
  if (losses.length !== rows.length) throw new UserError(`mocoStep: ${losses.length} losses for ${rows.length} task gradients`);
  return noGrad(() =>
    tidy(() => {
      const stepBuf = state.getBuffer('step');
      stepBuf.add_(1);
      const step = stepBuf.item();
      const y = state.y;
      const g = G.to(y.dtype);
      const scaled = g.div(g.mul(g).sum(1, true).sqrt().add(1e-8)).mul(tensor(losses.slice(), [rows.length, 1], { dtype: y.dtype, device: y.device }));
      const b = o.beta / step ** o.betaSigma;
      rows.forEach((t, i) => {
        const yt = y.select(0, t);
        yt.add_(yt.sub(scaled.select(0, i)), -b);
      });
      let yyT = mm(y, y.t());
      if (o.rho !== 0) yyT = yyT.add(eye(T, y).mul(o.rho));
      const lam = state.lambda;
      const next = softmax(lam.sub(mm(yyT, lam.unsqueeze(1)).squeeze(1).mul(o.gamma / step ** o.gammaSigma)), 0);
      lam.copy_(next);
      return mm(lam.unsqueeze(0), y).squeeze(0);
    }),
  );
}

/** The n x n identity in like's dtype and device. */
function eye(n: number, like: Tensor): Tensor {
  const data = new Float64Array(n * n);
  for (let i = 0; i < n; i++) data[i * n + i] = 1;
  return tensor(data, [n, n], { dtype: like.dtype, device: like.device });
}

// ------------------------------------------------------------------ Aligned-MTL (Senushkin et al., CVPR 2023)
/** float32's machine epsilon (2^-23), the tolerance unit of Aligned-MTL's rank cut. */
const EPS_FLOAT32 = 2 ** -23;

/**
 * Aligned-MTL's matrix of a Gram matrix M = G G^T (T x T, float64): eigendecompose; keep the
 * eigenvalues above max(lambda) * T * eps(float32), sorted descending; B = sqrt(lambda_min) V
 * diag(lambda^-1/2) V^T over the kept ones (lambda_min: the smallest kept); alpha = column sums of
 * B. Then the rows of B G are orthogonal with equal norms sqrt(lambda_min) (on the kept subspace),
 * and the shared gradient is sum_t alpha_t g_t = 1^T B G. With all gradients zero, B = 0.
 */
export function alignedMtlMatrix(M: readonly (readonly number[])[]): { B: number[][]; alpha: number[]; kept: number[] } {
  const T = M.length;
  const { values, vectors } = symmetricEigen(M);
  const max = Math.max(...values);
  const tol = max * T * EPS_FLOAT32;
  const kept = [...values.keys()].filter((k) => values[k]! > tol && values[k]! > 0).sort((i, j) => values[j]! - values[i]!);
  const B = M.map(() => new Array<number>(T).fill(0));
  if (kept.length > 0) {
    const lmin = values[kept[kept.length - 1]!]!;
    for (const k of kept) {
      const w = Math.sqrt(lmin / values[k]!);
      for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) B[i]![j]! += w * vectors[i]![k]! * vectors[j]![k]!;
    }
  }
  const alpha = B[0]!.map((_, j) => B.reduce((s, row) => s + row[j]!, 0));
  return { B, alpha, kept: kept.map((k) => values[k]!) };
}

/** Gram matrix G G^T (T x T) of the rows of G, as float64 JS arrays. */
export function gram(G: Tensor): number[][] {
  const T = G.size(0);
  const flat = noGrad(() => tidy(() => mm(G, G.t()).double().toNumbers()));
  return [...Array(T).keys()].map((i) => flat.slice(i * T, (i + 1) * T));
}

/** Aligned-MTL's task weights alpha (T) of task gradients G (T x D). */
export function alignedMtlWeights(G: Tensor): number[] {
  return alignedMtlMatrix(gram(G)).alpha;
}

/** sum_t w_t g_t (D) of the rows of G, in G's dtype. */
export function combineRows(G: Tensor, w: readonly number[]): Tensor {
  return noGrad(() => tidy(() => mm(tensor(w.slice(), [1, w.length], { dtype: G.dtype, device: G.device }), G).squeeze(0)));
}

// ------------------------------------------------------------------ the backward of a gradient-transform method
/** L_t = (1/B) sum of CE over task t's rows, for the tasks present in the batch. */
export function taskLosses(logits: (Tensor | null)[], batch: TaskBatch): { tasks: number[]; losses: Tensor[] } {
  const tasks: number[] = [];
  const losses: Tensor[] = [];
  logits.forEach((l, t) => {
    if (!l) return;
    const labels = batch.routing.slice(batch.local, t);
    tasks.push(t);
    losses.push(crossEntropy(l, labels, { reduction: 'sum' }).div(batch.size));
  });
  return { tasks, losses };
}

/**
 * One backward per loss; returns G (P x D), row i the flattened gradient of losses[i] w.r.t.
 * `shared` (in their order). The shared gradients are left at zero; every other parameter
 * accumulates the gradients of all losses (a head, reached by its own task's loss only, gets
 * exactly that task's gradient).
 */
export function perTaskGradients(shared: readonly Tensor[], losses: readonly Tensor[], step: TrainStep = PLAIN_STEP): Tensor {
  const rows: Tensor[] = [];
  losses.forEach((loss, i) => {
    step.backward(loss, { retainGraph: i < losses.length - 1, overlap: false });
    rows.push(
      noGrad(() =>
        tidy(() => {
          const row = cat(shared.map((p) => (p.grad ?? zerosLike(p)).reshape([-1])));
          for (const p of shared) p.grad?.zero_();
          return row;
        }),
      ),
    );
  });
  const G = tidy(() => cat(rows.map((r) => r.unsqueeze(0)), 0));
  rows.forEach((r) => r.dispose()); // G holds a copy: free the rows now (T x D floats each step)
  return G;
}

/** Writes the flat gradient `flat` (D) into the `.grad` of `shared` (in their order). */
export function writeGradients(shared: readonly Tensor[], flat: Tensor): void {
  noGrad(() =>
    tidy(() => {
      let off = 0;
      for (const p of shared) {
        const part = flat.narrow(0, off, p.numel).view(p.shape);
        const g = p.grad;
        if (g) g.copy_(part);
        else p.grad = part.clone();
        off += p.numel;
      }
      if (off !== flat.numel) throw new UserError(`writeGradients: ${flat.numel} values for ${off} parameter elements`);
    }),
  );
}

/** The combination of a gradient-transform method: task gradients G (P x D) of the present tasks, their losses -> shared gradient (D). */
export type GradientTransform = (G: Tensor, losses: number[], present: number[]) => Tensor;

/**
 * A Method over a MultiTaskNet whose shared gradient is `transform` of the per-task gradients.
 * `build` may register state on the network (MoCo's), so that checkpoints carry it.
 */
export function gradientTransformMethod(
  name: MethodName,
  ctx: MethodContext,
  build: (net: MultiTaskNet, shared: Tensor[]) => { transform: GradientTransform; describe: Record<string, string | number> },
): Method {
  const net = new MultiTaskNet(ctx);
  if (ctx.channelsLast) net.toChannelsLast();
  const shared = () => net.sharedParameters();
  const { transform, describe } = build(net, shared());
  const backboneParams = shared().reduce((s, p) => s + p.numel, 0);
  return {
    name,
    module: net,
    backward(batch, step = PLAIN_STEP) {
      const params = shared();
      const { tasks, losses } = step.forward(() => taskLosses(net.logits(batch), batch));
      if (tasks.length === 0) throw new UserError(`${name}: empty batch`);
      const values = losses.map((l) => l.item());
      const G = perTaskGradients(params, losses, step);
      const combined = transform(G, values, tasks);
      writeGradients(params, combined);
      G.dispose();
      combined.dispose();
      return tensor(values.reduce((a, b) => a + b, 0));
    },
    logits: (batch) => evalNoGrad(net, () => net.logits(batch)),
    params: () => ({ params_training: backboneParams, params_deployment: backboneParams }),
    deploy: (t) => classifierDeployment(net.deploy(t), ctx.model, ctx.tasks[t]!, ctx.inChannels),
    describe: () => ({ method: name, shared_parameters: backboneParams, ...describe }),
    dispose: () => net.dispose(),
  };
}
