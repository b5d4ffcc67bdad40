// The layers of the inference path: a convolution with its BatchNorm folded in and its ReLU fused
// (weights pre-packed by oneDNN on the first call, for that input's shape), and the same for an
// expert convolution's EKS pass. They exist only inside an InferencePlan (plan.ts) and refuse
// training mode: training always runs the unfolded layers.
import { Module } from '../nn/module.js';
import { type Tensor, Tensor as TensorClass } from '../tensor/index.js';
import { N } from '../tensor/ops-native.js';
import { UserError } from '../tensor/errors.js';
import { Routing } from '../lorkd/routing.js';
import type { FoldedConv, FoldedExpert } from './fold.js';

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

/** relu?(conv(x, W') + b'): a convolution and the BatchNorm after it, as one call. */
export class InferenceConv2d extends FoldedLayer {
  // undefined: not tried yet; null: no pre-packed path for these weights.
  #packed: unknown = undefined;

  override forward(x: Tensor): Tensor {
    this.refuseTraining();
    const w = this.getBuffer('weight');
    const b = this.getBuffer('bias');
    const g = this.geometry;
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
 * route (1x1, stride 1, no padding) the shared convolution with W0' and the bias runs pre-packed
 * by oneDNN (packed on the first call; the ReLU comes after the low-rank paths, so it is not
 * packed in). The EKS strategy argument is accepted and ignored: every strategy computes the
 * same function.
 */
export class InferenceExpertConv2d extends FoldedLayer {
  readonly scale: number;
  // undefined: not tried yet; null: no pre-packed path (not the GEMM route, or no oneDNN).
  #packed: unknown = undefined;

  constructor(folded: FoldedExpert, geometry: ConvGeometry, relu: boolean) {
    super(folded, geometry, relu);
    this.registerBuffer('expertA', folded.expertA);
    this.registerBuffer('expertB', folded.expertB);
    this.scale = folded.scale;
  }

  override forward(x: Tensor, routing?: unknown): Tensor {
    this.refuseTraining();
    if (!(routing instanceof Routing)) throw new UserError('InferenceExpertConv2d: no task routing given (call the decomposition model with a routing)');
    const g = this.geometry;
    const [w, a, b, bias] = ['weight', 'expertA', 'expertB', 'bias'].map((k) => this.getBuffer(k).handle);
    if (this.#packed === undefined) this.#packed = this.#prepack(x);
    return TensorClass.wrap(N.eksConvInfer(x.handle, w, a, b, routing.counts, this.scale, g.stride, g.padding, g.dilation, bias, this.relu, this.#packed ?? null));
  }

  #prepack(x: Tensor): unknown {
    const g = this.geometry;
    const w = this.getBuffer('weight');
    const gemm = w.size(2) === 1 && w.size(3) === 1 && g.stride.every((s) => s === 1) && g.padding.every((p) => p === 0) && g.dilation.every((d) => d === 1);
    if (!gemm || x.ndim !== 4 || x.device !== 'cpu' || x.dtype !== 'float32') return null;
    return N.convPrepack(w.handle, this.getBuffer('bias').handle, g.stride, g.padding, g.dilation, 1, x.shape, false);
  }

  override dispose(): void {
    this.#packed = null;
    super.dispose();
  }
}
