// ShuffleNetV2's unit on the inference path: its folded convolutions, the split and the
// concatenate-and-shuffle as one native call (shuffle-unit.cc), where the unit's layers made
// eight to ten calls. Built by InferencePlan for a unit whose every convolution was folded: into
// an InferenceConv2d (a plain expert), or into an InferenceExpertConv2d on the GEMM route (a
// decomposition's 1x1 expert convolutions: the EKS pass runs inside the same call, with the
// routing's counts).
import { Module } from '../nn/module.js';
import type { Sequential } from '../nn/sequential.js';
import { Identity } from '../nn/basic.js';
import { type Tensor, Tensor as TensorClass } from '../tensor/index.js';
import { N } from '../tensor/ops-native.js';
import type { NativeHandle } from '../tensor/native.js';
import type { InvertedResidual } from '../models/shufflenetv2.js';
import { runWith } from '../models/classifier.js';
import { Routing } from '../lorkd/routing.js';
import { InferenceConv2d, InferenceExpertConv2d } from './layers.js';

export class InferenceShuffleUnit extends Module {
  readonly #prepared: unknown;

  /**
   * `folded` gives each of the unit's branch layers' folded replacement. Returns null where a
   * branch holds a layer that was not folded or dropped (then the unit runs layer by layer).
   */
  static of(unit: InvertedResidual, folded: (m: Module) => Module | undefined): InferenceShuffleUnit | null {
    // The low-rank paths run as raw sgemm calls (lowrank-blas.cc): without them, expert units keep their layers.
    const expertsRun = N.lowRankBlasAvailable() as boolean;
    const steps = (branch: Sequential): unknown[][] | null => {
      const out: unknown[][] = [];
      for (const layer of branch) {
        const f = folded(layer);
        if (f instanceof InferenceConv2d) {
          const g = f.geometry;
          out.push([f.getBuffer('weight').handle, f.getBuffer('bias').handle, g.groups, g.stride, g.padding, f.relu]);
        } else if (f instanceof InferenceExpertConv2d) {
          const g = f.geometry;
          const [a, b] = [f.getBuffer('expertA'), f.getBuffer('expertB')];
          if (!expertsRun || !f.gemmRoute || a.ndim !== 3 || b.ndim !== 3) return null;
          out.push([f.getBuffer('weight').handle, f.getBuffer('bias').handle, 1, g.stride, g.padding, f.relu, a.handle, b.handle, f.scale]);
        } else if (!(f instanceof Identity)) {
          return null;
        }
      }
      return out;
    };
    const b1 = steps(unit.branch1);
    const b2 = steps(unit.branch2);
    if (!b1 || !b2 || b2.length === 0 || (unit.stride > 1) !== b1.length > 0) return null;
    return new InferenceShuffleUnit(unit, N.shuffleUnitPrepare(unit.stride, b1, b2));
  }

  private constructor(
    readonly unit: InvertedResidual,
    prepared: unknown,
  ) {
    super();
    this.#prepared = prepared;
    this.training = false;
  }

  /** The native unit (for InferenceShuffleStages). */
  get prepared(): unknown {
    return this.#prepared;
  }

  /** Lets go of the unit's weights now (the folded layers that own them are freed with the plan). */
  override dispose(): void {
    N.shuffleUnitFree(this.#prepared);
    super.dispose();
  }

  /** The unit in one call; where that does not apply, its original layers (in eval mode: the same function). */
  override forward(x: Tensor, ...call: unknown[]): Tensor {
    const routing = call.find((c): c is Routing => c instanceof Routing);
    const y = N.shuffleUnitRun(this.#prepared, x.handle, routing ? routing.counts : null) as NativeHandle | null;
    return y === null ? this.unit.forward(x, ...call) : TensorClass.wrap(y);
  }
}

/** The children of a ShuffleNetV2 whose units InferenceShuffleStages runs, in order. */
export const SHUFFLE_STAGES = ['stage2', 'stage3', 'stage4'] as const;

/**
 * A ShuffleNetV2's stages, every unit fused, as one native call (shuffleUnitsRun). On two or
 * more intra-op threads it splits the batch, one part per thread, each thread running every unit
 * on its part with single-threaded kernels: small layers gain less from a second thread inside
 * each layer than two independent parts of the batch do (the stages at 64 px batch 8 on two
 * threads: 1.4 against 1.8-1.9 ms; level at 224 px). Where the call does not apply (not float32
 * CPU, autocast), the stages' own modules run.
 */
export class InferenceShuffleStages extends Module {
  constructor(
    // The model's stage modules (with the plan's units swapped in when they run).
    readonly originals: Module[],
    readonly units: InferenceShuffleUnit[],
  ) {
    super();
    this.training = false;
  }

  override forward(x: Tensor, ...call: unknown[]): Tensor {
    const routing = call.find((c): c is Routing => c instanceof Routing);
    const y = N.shuffleUnitsRun(
      this.units.map((u) => u.prepared),
      x.handle,
      routing ? routing.counts : null,
    ) as NativeHandle | null;
    return y === null ? this.originals.reduce((h, m) => runWith(m, h, call), x) : TensorClass.wrap(y);
  }
}
