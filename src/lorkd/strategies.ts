// The EKS execution strategies. All compute the same function: row b of task t is convolved
// with W0 + delta_t, delta_t = reshape(B_t A_t, [Cout, Cin, k, k]) * scale. They differ only in
// how (and how fast); see docs/ARCHITECTURE.md. Inputs are sorted by task (see Routing).
import { type Tensor, Tensor as TensorClass, conv2d, cat, mm, bmm } from '../tensor/index.js';
import { N } from '../tensor/ops-native.js';
import type { Routing } from './routing.js';
import type { TaskFactors } from './task-factors.js';

export const STRATEGIES = ['fused', 'routed', 'gathered', 'loop', 'aggregated'] as const;
export type Strategy = (typeof STRATEGIES)[number];
export type StrategyOption = Strategy | 'auto';

export interface ExpertWeights {
  /** Shared weight W0 (Cout, Cin, k, k). */
  weight: Tensor;
  /** A, (T, r*k, Cin*k). */
  expertA: Tensor;
  /** B, (T, Cout*k, r*k). */
  expertB: Tensor;
  scale: number;
  /**
   * Each task's own factors and scale, in routing order, where the caller has them apart
   * (ExpertConv2d's parameters). The strategies that work task by task (routed, loop) take them as
   * they are: no (T, ...) tensor is read back task by task, so no backward writes a full-size
   * gradient per task. Without them, task t's factors are `expertA[t]`, `expertB[t]`.
   */
  tasks?: readonly TaskFactors[];
  conv: { stride: number[]; padding: number[]; dilation: number[] };
}

/** Task t's factors: its own parameters where given, else its slice of the (T, ...) factors. */
function factorsOf(w: ExpertWeights, t: number): { a: Tensor; b: Tensor; scale: number } {
  return w.tasks?.[t] ?? { a: w.expertA.select(0, t), b: w.expertB.select(0, t), scale: w.scale };
}

/** delta_t = reshape(B_t A_t, W0's shape) * scale_t. */
export function expertDelta(w: ExpertWeights, t: number): Tensor {
  const f = factorsOf(w, t);
  return mm(f.b, f.a).view(w.weight.shape).mul(f.scale);
}

/** All T deltas at once: (T, Cout, Cin, k, k). */
function allDeltas(w: ExpertWeights): Tensor {
  const s = w.weight.shape;
  return bmm(w.expertB, w.expertA).view([w.expertA.size(0), ...s]).mul(w.scale);
}

const isPointwise = (w: ExpertWeights) => w.weight.size(2) === 1 && w.weight.size(3) === 1;

/** Native autograd function: per-task merged weights on contiguous row slices (eks.cc). */
function fused(x: Tensor, w: ExpertWeights, r: Routing): Tensor {
  return TensorClass.wrap(
    N.eksConv(x.handle, w.weight.handle, w.expertA.handle, w.expertB.handle, r.counts, w.scale, w.conv.stride, w.conv.padding, w.conv.dilation),
  );
}

/** Per-layer loop over tasks: one convolution per task present with W0 + delta_t (composed ops). */
function loop(x: Tensor, w: ExpertWeights, r: Routing): Tensor {
  const outs = r.present().map((t) => conv2d(x.narrow(0, r.offsets[t]!, r.counts[t]!), w.weight.add(expertDelta(w, t)), null, w.conv));
  return outs.length === 1 ? outs[0]! : cat(outs, 0);
}

/** The paper's: per-sample weights W'_b = W0 + sum_t M[b,t] delta_t, one grouped conv with B groups. */
function aggregated(x: Tensor, w: ExpertWeights, r: Routing): Tensor {
  const [b, cin, h, wd] = x.shape as [number, number, number, number];
  const [cout, , k1, k2] = w.weight.shape as [number, number, number, number];
  const perSample = allDeltas(w).indexSelect(0, r.taskIdsFor(w.weight)).add(w.weight.unsqueeze(0)); // (B, Cout, Cin, k, k)
  const y = conv2d(x.contiguous().reshape([1, b * cin, h, wd]), perSample.reshape([b * cout, cin, k1, k2]), null, { ...w.conv, groups: b });
  return y.reshape([b, cout, y.size(2), y.size(3)]);
}

/** Shared conv with W0, plus each present task's low-rank path on its own rows (PEFT's mixed batch). */
function routed(x: Tensor, w: ExpertWeights, r: Routing): Tensor {
  const base = conv2d(x, w.weight, null, w.conv);
  const paths = r.present().map((t) => {
    const xt = x.narrow(0, r.offsets[t]!, r.counts[t]!);
    if (!isPointwise(w)) return conv2d(xt, expertDelta(w, t), null, w.conv);
    const { a, b: bt, scale } = factorsOf(w, t); // (r_t, Cin), (Cout, r_t)
    const z = conv2d(xt, a.view([a.size(0), a.size(1), 1, 1]), null, w.conv);
    return conv2d(z, bt.view([bt.size(0), bt.size(1), 1, 1])).mul(scale);
  });
  return base.add(paths.length === 1 ? paths[0]! : cat(paths, 0));
}

/** Shared conv, then per-sample factors A[ids], B[ids] and two batched matmuls (1x1 convs). */
function gathered(x: Tensor, w: ExpertWeights, r: Routing): Tensor {
  if (!isPointwise(w) || w.conv.stride.some((s) => s !== 1)) return aggregatedDeltaOnly(x, w, r);
  const base = conv2d(x, w.weight, null, w.conv);
  const [b, cin, h, wd] = x.shape as [number, number, number, number];
  const a = w.expertA.indexSelect(0, r.taskIdsFor(w.expertA)); // (B, r, Cin)
  const bt = w.expertB.indexSelect(0, r.taskIdsFor(w.expertB)); // (B, Cout, r)
  const low = bmm(bt, bmm(a, x.reshape([b, cin, h * wd]))).mul(w.scale);
  return base.add(low.view([b, w.weight.size(0), h, wd]));
}

/** Shared conv plus a grouped conv with only the per-sample deltas (gathered's k > 1 case). */
function aggregatedDeltaOnly(x: Tensor, w: ExpertWeights, r: Routing): Tensor {
  const [b, cin, h, wd] = x.shape as [number, number, number, number];
  const [cout, , k1, k2] = w.weight.shape as [number, number, number, number];
  const d = allDeltas(w).indexSelect(0, r.taskIdsFor(w.weight)).reshape([b * cout, cin, k1, k2]);
  const low = conv2d(x.contiguous().reshape([1, b * cin, h, wd]), d, null, { ...w.conv, groups: b });
  return conv2d(x, w.weight, null, w.conv).add(low.reshape([b, cout, low.size(2), low.size(3)]));
}

export const RUN: Record<Strategy, (x: Tensor, w: ExpertWeights, r: Routing) => Tensor> = {
  fused,
  routed,
  gathered,
  loop,
  aggregated,
};
