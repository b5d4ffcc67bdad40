// Multi-tensor and neural-network functions (torch.* and torch.nn.functional.* in camelCase).
import { N } from './ops-native.js';
import { Tensor } from './tensor.js';

const hs = (ts: Tensor[]) => ts.map((t) => t.handle);
const ho = (t: Tensor | null | undefined) => (t ? t.handle : null);
const pair = (v: number | number[]): number[] => (typeof v === 'number' ? [v, v] : v);

export const cat = (ts: Tensor[], dim = 0): Tensor => Tensor.wrap(N.cat(hs(ts), dim));
export const stack = (ts: Tensor[], dim = 0): Tensor => Tensor.wrap(N.stack(hs(ts), dim));
export const where = (cond: Tensor, a: Tensor, b: Tensor): Tensor => Tensor.wrap(N.where(cond.handle, a.handle, b.handle));
export const matmul = (a: Tensor, b: Tensor): Tensor => Tensor.wrap(N.matmul(a.handle, b.handle));
export const mm = (a: Tensor, b: Tensor): Tensor => Tensor.wrap(N.mm(a.handle, b.handle));
export const bmm = (a: Tensor, b: Tensor): Tensor => Tensor.wrap(N.bmm(a.handle, b.handle));
export const addmm = (bias: Tensor, a: Tensor, b: Tensor, beta = 1, alpha = 1): Tensor =>
  Tensor.wrap(N.addmm(bias.handle, a.handle, b.handle, beta, alpha));
export const einsum = (eq: string, ...ts: Tensor[]): Tensor => Tensor.wrap(N.einsum(eq, hs(ts)));
export const maximum = (a: Tensor, b: Tensor): Tensor => a.maximum(b);
export const minimum = (a: Tensor, b: Tensor): Tensor => a.minimum(b);
export const logicalAnd = (a: Tensor, b: Tensor): Tensor => Tensor.wrap(N.logicalAnd(a.handle, b.handle));
export const logicalOr = (a: Tensor, b: Tensor): Tensor => Tensor.wrap(N.logicalOr(a.handle, b.handle));
export const bincount = (t: Tensor, minlength = 0): Tensor => Tensor.wrap(N.bincount(t.handle, minlength));
export const nonzero = (t: Tensor): Tensor => Tensor.wrap(N.nonzero(t.handle));

export interface Conv2dOptions {
  stride?: number | number[];
  padding?: number | number[];
  dilation?: number | number[];
  groups?: number;
}
export const conv2d = (x: Tensor, w: Tensor, b: Tensor | null = null, o: Conv2dOptions = {}): Tensor =>
  Tensor.wrap(N.conv2d(x.handle, w.handle, ho(b), pair(o.stride ?? 1), pair(o.padding ?? 0), pair(o.dilation ?? 1), o.groups ?? 1));

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  training?: boolean;
  momentum?: number;
  eps?: number;
}
/** batch_norm; in training mode the running statistics are updated in place with `momentum`. */
export const batchNorm = (x: Tensor, o: BatchNormOptions = {}): Tensor =>
  Tensor.wrap(
    N.batchNorm(x.handle, ho(o.weight), ho(o.bias), ho(o.runningMean), ho(o.runningVar), o.training ?? false, o.momentum ?? 0.1, o.eps ?? 1e-5),
  );
export const relu = (x: Tensor): Tensor => Tensor.wrap(N.relu(x.handle));
/** GELU: x * Phi(x) in the exact erf form (default, as torch.nn.GELU()), or its tanh approximation. */
export const gelu = (x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor => Tensor.wrap(N.gelu(x.handle, approximate));
/** layer_norm over the trailing dims `normalizedShape`, with optional elementwise affine weight and bias. */
export const layerNorm = (x: Tensor, normalizedShape: number[], weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor =>
  Tensor.wrap(N.layerNorm(x.handle, normalizedShape, ho(weight), ho(bias), eps));
export const sigmoid = (x: Tensor): Tensor => x.sigmoid();

export interface Pool2dOptions {
  stride?: number | number[];
  padding?: number | number[];
  dilation?: number | number[];
  ceilMode?: boolean;
  countIncludePad?: boolean;
}
export const maxPool2d = (x: Tensor, kernel: number | number[], o: Pool2dOptions = {}): Tensor =>
  Tensor.wrap(N.maxPool2d(x.handle, pair(kernel), pair(o.stride ?? kernel), pair(o.padding ?? 0), pair(o.dilation ?? 1), o.ceilMode ?? false));
export const avgPool2d = (x: Tensor, kernel: number | number[], o: Pool2dOptions = {}): Tensor =>
  Tensor.wrap(N.avgPool2d(x.handle, pair(kernel), pair(o.stride ?? kernel), pair(o.padding ?? 0), o.ceilMode ?? false, o.countIncludePad ?? true));
export const adaptiveAvgPool2d = (x: Tensor, size: number | number[]): Tensor => Tensor.wrap(N.adaptiveAvgPool2d(x.handle, pair(size)));
export const linear = (x: Tensor, w: Tensor, b: Tensor | null = null): Tensor => Tensor.wrap(N.linear(x.handle, w.handle, ho(b)));
/**
 * Rows grouped in order, `counts[t]` rows per group, each group through its own linear layer in
 * one native call: `[x_t W_t^T + b_t, ...]`, null for an empty group. The values of a narrow and a
 * linear per group; where a gradient is wanted or autocast is on, those very ops (the autograd
 * graph is the same), and a direct loop for small float32 heads otherwise.
 */
export const routedLinear = (x: Tensor, counts: readonly number[], weights: Tensor[], biases: Tensor[]): (Tensor | null)[] =>
  (N.routedLinear(x.handle, counts, hs(weights), hs(biases)) as unknown[]).map((h) => (h === null ? null : Tensor.wrap(h as never)));
export const dropout = (x: Tensor, p = 0.5, training = true): Tensor => Tensor.wrap(N.dropout(x.handle, p, training));
export const interpolate = (x: Tensor, size: number | number[], mode: 'bilinear' | 'bicubic' | 'nearest' = 'bilinear', alignCorners = false): Tensor =>
  Tensor.wrap(N.interpolate(x.handle, pair(size), mode, alignCorners));
export const softmax = (x: Tensor, dim: number): Tensor => Tensor.wrap(N.softmax(x.handle, dim));
export const logSoftmax = (x: Tensor, dim: number): Tensor => Tensor.wrap(N.logSoftmax(x.handle, dim));

export type Reduction = 'mean' | 'sum' | 'none';
export interface CrossEntropyOptions {
  weight?: Tensor | null;
  reduction?: Reduction;
  ignoreIndex?: number;
  labelSmoothing?: number;
}
export const crossEntropy = (logits: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor =>
  Tensor.wrap(N.crossEntropy(logits.handle, target.handle, ho(o.weight), o.reduction ?? 'mean', o.ignoreIndex ?? -100, o.labelSmoothing ?? 0));
/** kl_div(input = log q, target = p): sum p (log p - log q), reduced. */
export const klDiv = (input: Tensor, target: Tensor, reduction: Reduction | 'batchmean' = 'batchmean', logTarget = false): Tensor =>
  Tensor.wrap(N.klDiv(input.handle, target.handle, reduction, logTarget));
export const mseLoss = (a: Tensor, b: Tensor, reduction: Reduction = 'mean'): Tensor => Tensor.wrap(N.mseLoss(a.handle, b.handle, reduction));
export const nllLoss = (logp: Tensor, target: Tensor, reduction: Reduction = 'mean', ignoreIndex = -100): Tensor =>
  Tensor.wrap(N.nllLoss(logp.handle, target.handle, null, reduction, ignoreIndex));
export const oneHot = (t: Tensor, numClasses = -1): Tensor => Tensor.wrap(N.oneHot(t.handle, numClasses));
export const pad = (x: Tensor, pads: number[], mode: 'constant' | 'reflect' | 'replicate' = 'constant', value = 0): Tensor =>
  Tensor.wrap(N.pad(x.handle, pads, mode, value));

/** In-place multi-tensor ops over parameter lists (one native call each). */
export function foreachMul_(ts: Tensor[], s: number): void {
  N.foreachMul_(hs(ts), s);
}
export function foreachAdd_(ts: Tensor[], others: Tensor[], alpha = 1): void {
  N.foreachAddList_(hs(ts), hs(others), alpha);
}
/** Sum of squares of all elements of all tensors, in float64 (for clipping by norm). */
export const foreachNormSq = (ts: Tensor[]): number => {
  const t = Tensor.wrap(N.foreachNormSq(hs(ts)));
  const v = t.item();
  t.dispose();
  return v;
};
