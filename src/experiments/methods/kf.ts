// KF, Knowledge Factor (Yang et al., ECCV 2022; METHOD.md "Baselines, concretely"): a
// common-knowledge network (CKN, the shared backbone) and one task-specific network (TSN) per
// task; task t's classifier reads concat(CKN, TSN_t) features. Loss of a batch (each term a mean
// over the batch's rows, with the 1/B of every method here):
//   CE (label smoothing 0.1) of the combined head                                   x 1
//   CE (label smoothing 0.1) of a head over TSN_t's features alone                  x 1
//   InfoMax between the CKN's features and the teacher's (teacher features through
//     Linear-BN-ReLU-Linear; both L2-normalised; s = x1 x2^T;
//     loss = -(mean diag(s) - log mean exp(off-diagonal s)))                        x 1
//   InfoMin on each TSN's features: -0.5 mean(1 + log var - mu^2 - var) with the batch mean and
//     (unbiased) batch variance of the task's rows; averaged over the tasks present   x 1e-3
//   logit KD at T = 10 (KL of the temperature softmaxes, times T^2; teacher logits restricted
//     to the row's task classes, as LoRKD's logit KD)                                x 0.1
//
// The TSN width (our choice, the paper does not state it): a ShuffleNetV2 x0.5 backbone (its
// pooled features are 1024 wide, as the CKN's). Without classifiers, x1.0 has 1,253,604
// parameters and x0.5 341,792, so at 11 tasks KF trains 1,253,604 + 11 x 341,792 = 5,013,316
// (paper Table 4: 5.01 M) and deploys 1,253,604 + 341,792 = 1,595,396 (1.60 M). Counts, as for
// every method, leave out the heads and the InfoMax projector (used only in training).
// The projector's hidden width is the CKN's feature width.
import { Linear } from '../../nn/linear.js';
import { Sequential } from '../../nn/sequential.js';
import { BatchNorm2d } from '../../nn/batchnorm.js';
import { ReLU } from '../../nn/basic.js';
import { type Tensor, cat, crossEntropy, mm, noGrad, tidy } from '../../tensor/index.js';
import { UserError } from '../../tensor/errors.js';
import { parsePreprocessing } from '../../data/preprocessing.js';
import { PLAIN_STEP, type DeployedNetwork, type Method, type MethodContext, type ParamCounts, type TaskBatch } from './method.js';
import type { MethodSpec } from './spec.js';
import { FeatureNet, featureParameters } from './backbone.js';
import { Bundle, backboneParams, evalNoGrad, requireKd } from './common.js';
import { cacheRows, kdTerm, type KdContext } from './kd.js';
import { KfExpert, saveKfExpert } from './kf-expert.js';

/** The TSN backbone (see the header). */
export const KF_TSN_MODEL = 'shufflenet_v2_x0_5';
export const KF_LOSS = { labelSmoothing: 0.1, infoMax: 1, infoMin: 1e-3, kd: 0.1, temperature: 10 } as const;
/** Inside InfoMin's log var: a feature dimension that is constant over the rows (a dead ReLU) would make it -inf. */
const VAR_EPS = 1e-8;

/** Rows scaled to unit L2 norm (as torch F.normalize, eps 1e-12). */
function l2normalize(x: Tensor): Tensor {
  return x.div(x.mul(x).sum(1, true).sqrt().clamp(1e-12, null));
}

/**
 * InfoMax between paired rows of x1 and x2 (B, F), B >= 2: both L2-normalised, s = x1 x2^T,
 * -(mean of diag(s) - log(mean of exp(s_ij) over i != j)).
 */
export function infoMax(x1: Tensor, x2: Tensor): Tensor {
  const B = x1.size(0);
  if (B < 2 || x2.size(0) !== B) throw new UserError(`infoMax: needs two paired batches of at least 2 rows, got ${B} and ${x2.size(0)}`);
  return tidy(() => {
    const a = l2normalize(x1);
    const b = l2normalize(x2);
    const diag = a.mul(b).sum(1);
    const off = mm(a, b.t()).exp().sum().sub(diag.exp().sum()).div(B * (B - 1));
    return diag.mean().sub(off.log()).neg();
  });
}

/** InfoMin of features (n, F), n >= 2: the KL of N(mu, var) (batch statistics) to N(0, 1), -0.5 mean(1 + log var - mu^2 - var). */
export function infoMin(f: Tensor): Tensor {
  if (f.size(0) < 2) throw new UserError(`infoMin: needs at least 2 rows, got ${f.size(0)}`);
  return tidy(() => {
    const mu = f.mean(0);
    const v = f.var(0, 1);
    return v.add(VAR_EPS).log().add(1).sub(mu.mul(mu)).sub(v).mean().mul(-0.5);
  });
}

/** BatchNorm over the features of (N, C) inputs (torch.nn.BatchNorm1d), with BatchNorm2d's state keys. */
class BatchNorm1d extends BatchNorm2d {
  override forward(x: Tensor): Tensor {
    const [n, c] = x.shape as [number, number];
    return super.forward(x.view([n, c, 1, 1])).view([n, c]);
  }
}

/** Parameter counts of KF the paper's way (backbones only); with `classes`, also with the heads. */
export function kfParams(
  tasks: number,
  classes?: number[],
  o: { model?: string; tsnModel?: string; inChannels?: number } = {},
): ParamCounts & { params_training_with_heads?: number; params_deployment_with_head?: number[] } {
  if (!(Number.isInteger(tasks) && tasks > 0)) throw new UserError(`kfParams: tasks must be a positive integer, got ${tasks}`);
  if (classes && classes.length !== tasks) throw new UserError(`kfParams: ${classes.length} class counts for ${tasks} tasks`);
  const inChannels = o.inChannels ?? 3;
  const ckn = backboneParams(o.model ?? 'shufflenet_v2_x1_0', inChannels);
  const tsn = backboneParams(o.tsnModel ?? KF_TSN_MODEL, inChannels);
  const counts = { params_training: ckn + tasks * tsn, params_deployment: ckn + tsn };
  if (!classes) return counts;
  const F = 1024; // pooled width of both ShuffleNetV2 x0.5 and x1.0
  const combined = (n: number) => (2 * F + 1) * n;
  return {
    ...counts,
    params_training_with_heads: counts.params_training + classes.reduce((s, n) => s + combined(n) + (F + 1) * n, 0),
    params_deployment_with_head: classes.map((n) => counts.params_deployment + combined(n)),
  };
}

/** What one forward of KF gives on a task-sorted batch. */
interface KfForward {
  ckn: Tensor;
  /** Per task (null where absent): TSN_t's features, the combined logits, the TSN-only logits. */
  tsn: (Tensor | null)[];
  logits: (Tensor | null)[];
  tsnLogits: (Tensor | null)[];
}

/** KF's loss terms of a batch, unweighted (the method adds them with KF_LOSS's weights), and the combined logits. */
export interface KfTerms {
  ce: Tensor;
  ceTsn: Tensor;
  infoMax: Tensor | null;
  infoMin: Tensor | null;
  kd: Tensor;
  logits: (Tensor | null)[];
}

export function createKf(ctx: MethodContext, o: { tsnModel?: string } = {}): Method & { lossTerms(batch: TaskBatch): KfTerms } {
  const kd: KdContext = requireKd('kf', ctx);
  const tsnModel = o.tsnModel ?? KF_TSN_MODEL;
  const T = ctx.tasks.length;
  const ckn = new FeatureNet(ctx.model, ctx.inChannels);
  const tsns = new Sequential(...ctx.tasks.map(() => new FeatureNet(tsnModel, ctx.inChannels)));
  const tsn = (t: number) => tsns.at<FeatureNet>(t);
  const tF = tsn(0).numFeatures;
  const cF = ckn.numFeatures;
  const heads = new Sequential(...ctx.tasks.map((t) => new Linear(cF + tF, t.classNames.length)));
  const tsnHeads = new Sequential(...ctx.tasks.map((t) => new Linear(tF, t.classNames.length)));
  const projector = new Sequential(new Linear(kd.features.width, cF), new BatchNorm1d(cF), new ReLU(), new Linear(cF, cF));
  const module = new Bundle({ ckn, tsn: tsns, heads, tsn_heads: tsnHeads, projector });
  if (ctx.channelsLast) module.toChannelsLast();
  const cknParams = featureParameters(ckn.backbone).reduce((s, p) => s + p.numel, 0);
  const tsnParams = featureParameters(tsn(0).backbone).reduce((s, p) => s + p.numel, 0);
  // KF's logit KD: LoRKD's logit term at KF's temperature and weight (beta * alpha^2 = 0.1 * T^2).
  const logitKd: KdContext = { ...kd, mode: 'logits', alpha: KF_LOSS.temperature, beta: KF_LOSS.kd };

  const forward = (b: TaskBatch): KfForward => {
    const c = ckn.forward(b.images);
    const out: KfForward = { ckn: c, tsn: [], logits: [], tsnLogits: [] };
    for (let t = 0; t < T; t++) {
      if (b.routing.counts[t] === 0) {
        out.tsn.push(null);
        out.logits.push(null);
        out.tsnLogits.push(null);
        continue;
      }
      const f = tsn(t).forward(b.routing.slice(b.images, t));
      out.tsn.push(f);
      out.logits.push(heads.at<Linear>(t).forward(cat([b.routing.slice(c, t), f], 1)));
      out.tsnLogits.push(tsnHeads.at<Linear>(t).forward(f));
    }
    return out;
  };
  const smoothedCe = (logits: (Tensor | null)[], b: TaskBatch): Tensor =>
    cat(logits.flatMap((l, t) => (l ? [crossEntropy(l, b.routing.slice(b.local, t), { reduction: 'sum', labelSmoothing: KF_LOSS.labelSmoothing }).reshape([1])] : [])), 0)
      .sum()
      .div(b.size);

  const terms = (b: TaskBatch): KfTerms => {
    if (b.teacherRows === null) throw new UserError('kf distils from the foundation: the batch has no teacher-cache rows');
    const out = forward(b);
    const ce = smoothedCe(out.logits, b);
    const ceTsn = smoothedCe(out.tsnLogits, b);
    const im = b.size >= 2 ? infoMax(out.ckn, projector.forward(cacheRows(kd.features, b.teacherRows))) : null;
    const mins = out.tsn.flatMap((f) => (f && f.size(0) >= 2 ? [infoMin(f).reshape([1])] : []));
    const imin = mins.length ? cat(mins, 0).mean() : null;
    const kdl = kdTerm(logitKd, { features: out.ckn, logits: out.logits }, b, ctx.tasks, null);
    return { ce, ceTsn, infoMax: im, infoMin: imin, kd: kdl, logits: out.logits };
  };

  return {
    name: 'kf',
    lossTerms: terms,
    module,
    backward(batch, step = PLAIN_STEP) {
      const loss = step.forward(() => tidy(() => {
        const t = terms(batch);
        let l = t.ce.add(t.ceTsn).add(t.kd);
        if (t.infoMax) l = l.add(t.infoMax.mul(KF_LOSS.infoMax));
        if (t.infoMin) l = l.add(t.infoMin.mul(KF_LOSS.infoMin));
        return l;
      }));
      step.backward(loss);
      return loss;
    },
    logits: (batch) => evalNoGrad(module, () => forward(batch).logits),
    params: () => ({ params_training: cknParams + T * tsnParams, params_deployment: cknParams + tsnParams }),
    deploy(t): DeployedNetwork {
      if (!Number.isInteger(t) || t < 0 || t >= T) throw new UserError(`task ${t} out of range [0, ${T})`);
      const task = ctx.tasks[t]!;
      const expert = new KfExpert(ctx.model, tsnModel, task.classNames.length, ctx.inChannels);
      const dtype = ckn.parameters()[0]!.dtype;
      if (dtype !== 'float32') expert.toDtype(dtype);
      tidy(() => {
        const sd = new Map([...ckn.stateDict('ckn'), ...tsn(t).stateDict('tsn'), ...heads.at<Linear>(t).stateDict('fc')]);
        noGrad(() => expert.loadStateDict(sd, { strict: true }));
      });
      expert.eval();
      return {
        module: expert,
        forward: (images) => noGrad(() => expert.forward(images)),
        save(file, meta) {
          const p = parsePreprocessing({ channels: String(ctx.inChannels), resize: 'bilinear', ...meta }, file, { what: 'KF expert metadata' });
          const source = Object.fromEntries(Object.entries(meta).filter(([k]) => k.startsWith('source_')));
          saveKfExpert(file, expert, { ...p, cknModel: ctx.model, tsnModel, task: task.name, classNames: task.classNames.slice() }, source);
        },
        dispose: () => expert.dispose(),
      };
    },
    describe: () => ({ method: 'kf', tsn_model: tsnModel, tsn_features: tF, ckn_model: ctx.model, kd_temperature: KF_LOSS.temperature }),
    dispose: () => module.dispose(),
  };
}

export const KF: MethodSpec = {
  name: 'kf', label: 'KF', arch: 'backbone', teacher: () => ['features', 'logits'], teacherRequired: true,
  flops: 'other', backward: 'single', ranked: false, options: [], create: (ctx) => createKf(ctx),
  countParams: (o) => kfParams(o.tasks, undefined, { model: o.model }),
};
