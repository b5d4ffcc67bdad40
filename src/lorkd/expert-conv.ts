// Low-rank expert convolution (paper 3.1): a shared convolution W0 plus T low-rank experts.
// Keys: `weight` (W0, torchvision's name, so backbone checkpoints load), `expertA` (T, r*k, Cin*k),
// `expertB` (T, Cout*k, r*k). Task names live in checkpoint metadata, not in keys.
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/conv.js';
import { type Tensor, empty, zeros, noGrad, tidy } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { uniform } from '../nn/init.js';
import { RUN, type Strategy, type ExpertWeights, expertDelta } from './strategies.js';
import { Routing } from './routing.js';

export interface ExpertOptions {
  numTasks: number;
  /** Rank r (paper default 8). */
  rank?: number;
  /** Scaling numerator: delta = B A * (loraAlpha / r). Default: r (scale 1). */
  loraAlpha?: number;
}

export class ExpertConv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly rank: number;
  readonly loraAlpha: number;
  readonly numTasks: number;

  /** Wraps an existing (non-depthwise, square-kernel, bias-free) Conv2d: W0 starts as its weight. */
  constructor(base: Conv2d, o: ExpertOptions) {
    super();
    if (base.groups !== 1) throw new UserError('ExpertConv2d: depthwise/grouped convolutions stay shared');
    if (base.kernelSize[0] !== base.kernelSize[1]) throw new UserError('ExpertConv2d: square kernels only');
    if (base.hasParameter('bias')) throw new UserError('ExpertConv2d: convolutions with bias are not supported');
    this.inChannels = base.inChannels;
    this.outChannels = base.outChannels;
    this.kernelSize = base.kernelSize[0];
    this.stride = base.stride;
    this.padding = base.padding;
    this.dilation = base.dilation;
    this.rank = o.rank ?? 8;
    this.loraAlpha = o.loraAlpha ?? this.rank;
    this.numTasks = o.numTasks;
    if (!(this.rank >= 1 && Number.isInteger(this.rank))) throw new UserError(`rank must be a positive integer, got ${this.rank}`);
    if (!(this.numTasks >= 1 && Number.isInteger(this.numTasks))) throw new UserError(`numTasks must be a positive integer`);
    const k = this.kernelSize;
    const w0 = base.getParameter('weight');
    this.registerParameter('weight', w0);
    const dtype = w0.dtype;
    // A ~ kaiming-uniform(a = sqrt 5) per task: U(-1/sqrt(Cin*k), 1/sqrt(Cin*k)); B = 0.
    const bound = 1 / Math.sqrt(this.inChannels * k);
    this.registerParameter('expertA', uniform(empty([this.numTasks, this.rank * k, this.inChannels * k], { dtype }), -bound, bound));
    this.registerParameter('expertB', zeros([this.numTasks, this.outChannels * k, this.rank * k], { dtype }));
  }

  get scale(): number {
    return this.loraAlpha / this.rank;
  }

  weights(): ExpertWeights {
    return {
      weight: this.getParameter('weight'),
      expertA: this.getParameter('expertA'),
      expertB: this.getParameter('expertB'),
      scale: this.scale,
      conv: { stride: this.stride, padding: this.padding, dilation: this.dilation },
    };
  }

  /** delta_t, detached (for fusion and analysis). */
  delta(t: number): Tensor {
    return noGrad(() => tidy(() => expertDelta(this.weights(), t)));
  }

  /**
   * Rows of x are sorted by task as `routing` says; each is convolved with W0 + delta of its task
   * by `strategy`. Both are arguments of the call: nothing is stored between calls, so a forward
   * is reentrant (docs/ARCHITECTURE.md, "The seam").
   */
  override forward(x: Tensor, routing: Routing, strategy: Strategy = 'fused'): Tensor {
    if (!(routing instanceof Routing)) throw new UserError('ExpertConv2d: no task routing given (call the decomposition model with a routing)');
    if (routing.batchSize !== x.size(0)) throw new UserError(`ExpertConv2d: ${routing.batchSize} task ids for a batch of ${x.size(0)}`);
    if (routing.numTasks !== this.numTasks) throw new UserError(`ExpertConv2d: a routing over ${routing.numTasks} tasks for ${this.numTasks} experts`);
    if (!Object.hasOwn(RUN, strategy)) throw new UserError(`ExpertConv2d: unknown EKS strategy ${String(strategy)}`);
    return RUN[strategy](x, this.weights(), routing);
  }
}
