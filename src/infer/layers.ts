// The layers of the inference path: a convolution with its BatchNorm folded in and its ReLU fused
// (weights pre-packed by oneDNN on the first call, for that input's shape), and the same for an
// expert convolution's EKS pass. They exist only inside an InferencePlan (plan.ts) and refuse
// training mode: training always runs the unfolded layers.
import { Module } from '../nn/module.js';
import type { MaxPool2d } from '../nn/basic.js';
import { type Tensor, Tensor as TensorClass, keep } from '../tensor/index.js';
import { N } from '../tensor/ops-native.js';
import type { NativeHandle } from '../tensor/native.js';
import { UserError } from '../tensor/errors.js';
import { Routing } from '../lorkd/routing.js';
import type { FoldedConv, FoldedExpert } from './fold.js';

/**
 * Whether a dense convolution is a network's first layer as the direct stem kernel takes it: few
 * taps per output (input channels x window at most 64) and 8, 16, ..., 64 output channels. Only a
 * decomposition's stem runs it (each image through its task's merged weight, one call: 305
 * against 1,046 us for a convolution per task at 64 px batch 8 over 10 tasks); a plain stem runs oneDNN's,
 * which was 1.7-3x faster than the kernel from batch 8 up (and level at batch 1).
 */
function stemLike(w: Tensor, g: ConvGeometry): boolean {
  const [cout, cin, kh, kw] = w.shape as [number, number, number, number];
  return g.groups === 1 && g.dilation.every((d) => d === 1) && cin * kh * kw <= 64 && cout % 8 === 0 && cout <= 64;
}

// A network's first layer (stemLike) runs the stem kernel up to this many output values, oneDNN's
// pre-packed convolution above. ShuffleNetV2's stem (3 -> 24, 3x3, stride 2), one and two threads:
// 21 / 16 us against 38 / 35 at 64 px batch 1, 237 against 276 us at 224 px batch 1 (one thread),
// level at 64 px batch 8, slower from 224 px batch 2 (602 Ki values: 473 against 413 us).
const STEM_KERNEL_OUTPUTS = 384 << 10;

/** Output values of a convolution (cout channels, window kh x kw) on x (N, C, H, W). */
function stemOutputs(x: Tensor, kh: number, kw: number, cout: number, g: ConvGeometry): number {
  if (x.ndim !== 4) return Infinity;
  const [n, , h, w] = x.shape;
  const out = (size: number, k: number, i: number) => Math.floor((size + 2 * g.padding[i]! - g.dilation[i]! * (k - 1) - 1) / g.stride[i]!) + 1;
  return n! * out(h!, kh, 0) * out(w!, kw, 1) * cout;
}

/** Stride, padding, dilation and groups of a convolution. */
export interface ConvGeometry {
  stride: number[];
  padding: number[];
  dilation: number[];
  groups: number;
}

/** A folded convolution: weight and bias buffers, its geometry, whether the ReLU is fused. */
abstract class FoldedLayer extends Module {
  constructor(
    folded: FoldedConv,
    readonly geometry: ConvGeometry,
    readonly relu: boolean,
  ) {
    super();
    this.registerBuffer('weight', folded.weight);
    this.registerBuffer('bias', folded.bias);
    this.training = false;
  }

  protected refuseTraining(): void {
    if (this.training) throw new UserError(`${this.constructor.name}: the inference path runs in eval mode only (training goes through the unfolded model)`);
  }
}

/**
 * relu?(conv(x, W') + b'): a convolution and the BatchNorm after it, as one call. On
 * channels_last input a 1x1 convolution runs as one GEMM, a depthwise one and a small stem (3
 * input channels, up to 384 Ki outputs) as direct loops (infer-kernels.cc); a dense one over at
 * most 16 output pixels with a large weight as one pass over its weight (few-rows-conv.cc); the
 * rest, and any input those kernels do not take, runs oneDNN's pre-packed convolution.
 */
export class InferenceConv2d extends FoldedLayer {
  // undefined: not tried yet; null: no pre-packed path for these weights.
  #packed: unknown = undefined;
  // The hand-written kernel for this geometry (null: none); it answers null for an input it does not take.
  readonly #kernel: ((x: Tensor, w: unknown, b: unknown) => unknown) | null;

  constructor(folded: FoldedConv, geometry: ConvGeometry, relu: boolean) {
    super(folded, geometry, relu);
    const [cout, cinPerGroup, kh, kw] = folded.weight.shape as [number, number, number, number];
    const g = geometry;
    const unit = g.dilation.every((d) => d === 1);
    if (unit && g.groups === 1 && kh === 1 && kw === 1 && g.stride.every((s) => s === 1) && g.padding.every((p) => p === 0)) {
      const wt = this.#taps(N.pointwiseTransposed(folded.weight.handle));
      this.#kernel = (x, w, b) => N.pointwiseConvInfer(x.handle, w, b, relu, wt);
    } else if (unit && cinPerGroup === 1 && g.groups === cout) {
      const taps = this.#taps(N.depthwiseTaps(folded.weight.handle));
      this.#kernel = (x, _w, b) => N.depthwiseConvInfer(x.handle, taps, kh, kw, b, g.stride, g.padding, relu);
    } else if (stemLike(folded.weight, g)) {
      const taps = this.#taps(N.stemTaps(folded.weight.handle, null, null, 1));
      this.#kernel = (x, _w, b) => (stemOutputs(x, kh, kw, cout, g) <= STEM_KERNEL_OUTPUTS ? N.stemConvInfer(x.handle, taps, kh, kw, b, g.stride, g.padding, relu, []) : null);
    } else {
      this.#kernel = null;
    }
  }

  // The weight rearranged for a kernel, as a non-persistent buffer (freed with the layer).
  #taps(handle: unknown): NativeHandle {
    return this.registerBuffer('taps', keep(TensorClass.wrap(handle as NativeHandle)), { persistent: false }).handle;
  }

  override forward(x: Tensor): Tensor {
    this.refuseTraining();
    const w = this.getBuffer('weight');
    const b = this.getBuffer('bias');
    const g = this.geometry;
    if (this.#kernel !== null) {
      const y = this.#kernel(x, w.handle, b.handle) as NativeHandle | null;
      if (y !== null) return TensorClass.wrap(y);
    }
    if (this.#packed === undefined && x.ndim === 4 && x.device === 'cpu' && x.dtype === 'float32') {
      this.#packed = N.convPrepack(w.handle, b.handle, g.stride, g.padding, g.dilation, g.groups, x.shape, this.relu);
    }
    return TensorClass.wrap(N.convInfer(x.handle, w.handle, b.handle, this.#packed ?? null, g.stride, g.padding, g.dilation, g.groups, this.relu));
  }

  override dispose(): void {
    this.#packed = null;
    super.dispose();
  }
}

/**
 * The EKS pass of an expert convolution and its BatchNorm (and ReLU): the fused strategy's
 * arithmetic on W0' and B' with the bias added, one native call, no autograd record. On the GEMM
 * route (1x1, stride 1, no padding) a task with many rows goes through its merged weight, and
 * otherwise the shared convolution with W0' and the bias runs pre-packed by oneDNN (packed on the
 * first call; the ReLU comes after the low-rank paths, so it is not packed in) and the low-rank
 * paths row by row (eks-pointwise.cc). The EKS strategy argument is accepted and ignored: every strategy computes the
 * same function.
 */
export class InferenceExpertConv2d extends FoldedLayer {
  readonly scale: number;
  // undefined: not tried yet; null: no pre-packed path (not the GEMM route, or no oneDNN).
  #packed: unknown = undefined;

  // The stem's merged weight per task, per tap (null: not a stem-like convolution).
  readonly #stemTaps: NativeHandle | null = null;
  // On the GEMM route: A and B arranged for the row-by-row low-rank paths (null elsewhere).
  readonly #rowFactors: [NativeHandle, NativeHandle, NativeHandle | null] | null = null;
  readonly #weightT: NativeHandle | null = null;

  constructor(folded: FoldedExpert, geometry: ConvGeometry, relu: boolean) {
    super(folded, geometry, relu);
    this.registerBuffer('expertA', folded.expertA);
    this.registerBuffer('expertB', folded.expertB);
    this.scale = folded.scale;
    if (!this.gemmRoute && stemLike(folded.weight, geometry) && folded.expertA.ndim === 3) {
      const taps = keep(TensorClass.wrap(N.stemTaps(folded.weight.handle, folded.expertA.handle, folded.expertB.handle, folded.scale)));
      this.#stemTaps = this.registerBuffer('stemTaps', taps, { persistent: false }).handle;
    }
    if (this.gemmRoute && folded.expertA.ndim === 3) {
      // [At, Bt] and, at rank 4, 8 and 16, A in groups of input channels for the AVX-512 loop.
      const [at, bt, ap] = (N.lowRankRowFactors(folded.expertA.handle, folded.expertB.handle) as NativeHandle[]).map((h) => keep(TensorClass.wrap(h)));
      const buffer = (name: string, t: Tensor) => this.registerBuffer(name, t, { persistent: false }).handle;
      this.#rowFactors = [buffer('rowA', at!), buffer('rowB', bt!), ap ? buffer('rowPairs', ap) : null];
      // W0' as (Cin, Cout): the shared GEMM over few rows reads it faster (as InferenceConv2d's).
      this.#weightT = buffer('weightT', keep(TensorClass.wrap(N.pointwiseTransposed(folded.weight.handle) as NativeHandle)));
    }
  }

  override forward(x: Tensor, routing?: unknown): Tensor {
    this.refuseTraining();
    if (!(routing instanceof Routing)) throw new UserError('InferenceExpertConv2d: no task routing given (call the decomposition model with a routing)');
    const g = this.geometry;
    const [w, a, b, bias] = ['weight', 'expertA', 'expertB', 'bias'].map((k) => this.getBuffer(k).handle);
    if (this.#stemTaps !== null) {
      const [kh, kw] = [this.getBuffer('weight').size(2), this.getBuffer('weight').size(3)];
      const y = N.stemConvInfer(x.handle, this.#stemTaps, kh, kw, bias, g.stride, g.padding, this.relu, routing.counts) as NativeHandle | null;
      if (y !== null) return TensorClass.wrap(y);
    }
    if (this.#packed === undefined) this.#packed = this.#prepack(x);
    const [at, bt, ap] = this.#rowFactors ?? [null, null, null];
    return TensorClass.wrap(N.eksConvInfer(x.handle, w, a, b, routing.counts, this.scale, g.stride, g.padding, g.dilation, bias, this.relu, this.#packed ?? null, at, bt, ap, this.#weightT));
  }

  /** Whether this is a 1x1, stride 1, unpadded convolution: the shared convolution is one GEMM. */
  get gemmRoute(): boolean {
    const g = this.geometry;
    const w = this.getBuffer('weight');
    return w.size(2) === 1 && w.size(3) === 1 && g.stride.every((s) => s === 1) && g.padding.every((p) => p === 0) && g.dilation.every((d) => d === 1);
  }

  #prepack(x: Tensor): unknown {
    const g = this.geometry;
    const w = this.getBuffer('weight');
    if (!this.gemmRoute || x.ndim !== 4 || x.device !== 'cpu' || x.dtype !== 'float32') return null;
    return N.convPrepack(w.handle, this.getBuffer('bias').handle, g.stride, g.padding, g.dilation, 1, x.shape, false);
  }

  override dispose(): void {
    this.#packed = null;
    super.dispose();
  }
}

/**
 * Max pooling (dilation 1, floor mode) on channels_last input as a direct loop
 * (infer-kernels.cc); other input runs ATen's.
 */
export class InferenceMaxPool2d extends Module {
  readonly #window: [number, number];
  readonly #stride: [number, number];
  readonly #padding: [number, number];

  constructor(readonly original: MaxPool2d) {
    super();
    const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);
    this.#window = pair(original.kernelSize);
    this.#stride = pair(original.options.stride ?? original.kernelSize);
    this.#padding = pair(original.options.padding ?? 0);
    this.training = false;
  }

  /** Whether the kernel computes this pooling (else the plan keeps the module). */
  static takes(m: MaxPool2d): boolean {
    const d = m.options.dilation ?? 1;
    return !m.options.ceilMode && (typeof d === 'number' ? d === 1 : d.every((v) => v === 1));
  }

  override forward(x: Tensor): Tensor {
    const y = N.maxPoolInfer(x.handle, this.#window[0], this.#window[1], this.#stride, this.#padding) as NativeHandle | null;
    return y === null ? this.original.forward(x) : TensorClass.wrap(y);
  }
}
