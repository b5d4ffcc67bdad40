// An InferencePlan: a network's inference path, built once from its current weights. Every
// convolution followed by a BatchNorm (and ReLU) becomes one InferenceConv2d (or, for LoRKD's
// expert convolutions, one InferenceExpertConv2d): BatchNorm folded exactly, ReLU fused, weights
// pre-packed. `run(fn)` swaps those layers in, runs fn in libtorch's inference mode and swaps the
// originals back, so the network itself (its state dict, its training) is never changed; a
// deployed network keeps one plan for its whole life, an evaluation builds one per pass.
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/conv.js';
import { BatchNorm2d } from '../nn/batchnorm.js';
import { ReLU, Identity, MaxPool2d } from '../nn/basic.js';
import { Sequential } from '../nn/sequential.js';
import { inferenceMode, tidy } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { ExpertConv2d } from '../lorkd/expert-conv.js';
import { DecompositionModel } from '../lorkd/decomposition.js';
import { BasicBlock, Bottleneck, ResNet } from '../models/resnet.js';
import { InvertedResidual, ShuffleNetV2 } from '../models/shufflenetv2.js';
import { foldConvBn, foldExpertBn } from './fold.js';
import { InferenceShuffleUnit, InferenceShuffleStages, SHUFFLE_STAGES } from './shuffle-unit.js';
import { InferenceResNetTrunk, TRUNK_CHILDREN } from './resnet-trunk.js';
import { InferenceConv2d, InferenceExpertConv2d, InferenceMaxPool2d, type ConvGeometry } from './layers.js';

interface Swap {
  parent: Module;
  name: string;
  original: Module;
  replacement: Module;
}

// Blocks whose `relu` child only ever follows the listed conv<i>/bn<i> pairs (torchvision's
// ResNet): there the ReLU is fused into those convolutions and the child becomes an Identity.
const RELU_AFTER = new Map<Function, string[]>([
  [ResNet, ['1']],
  [BasicBlock, ['1']],
  [Bottleneck, ['1', '2']],
]);

const isConv = (m: Module | undefined): m is Conv2d | ExpertConv2d => m instanceof Conv2d || m instanceof ExpertConv2d;
const foldable = (m: Module | undefined): m is BatchNorm2d => m instanceof BatchNorm2d && m.trackRunningStats;

function geometryOf(c: Conv2d | ExpertConv2d): ConvGeometry {
  return { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c instanceof Conv2d ? c.groups : 1 };
}

export class InferencePlan {
  readonly #swaps: Swap[] = [];
  readonly #folded = new Map<Module, Module>();
  readonly #fusedUnits: InferenceShuffleUnit[] = [];
  readonly #trunks: InferenceResNetTrunk[] = [];
  // Folded convolutions a trunk took over (their weights live on in its reordered copies).
  #trunkConvs = 0;
  #stageRuns = 0;
  readonly #modules: Module[];
  #applied = false;
  #disposed = false;

  /**
   * The plan of a network's eval-mode forward, from its weights and BatchNorm statistics now
   * (later changes need a new plan).
   */
  static of(model: Module): InferencePlan {
    return new InferencePlan(model);
  }

  private constructor(readonly model: Module) {
    this.#modules = model.modules();
    const parents = model.modules();
    // The decomposition model runs its backbone's forward, which reads the backbone's own children.
    if (model instanceof DecompositionModel) parents.push(...model.backbone.modules().filter((m) => !parents.includes(m)));
    for (const p of parents) {
      if (p instanceof Sequential) this.#sequential(p);
      else if (!(p instanceof DecompositionModel)) this.#named(p); // its backbone's children are the ones that run
    }
    this.#units(parents);
    this.#stages(parents);
    this.#pools(parents);
    this.#resnetTrunks(parents); // last: it takes back the swaps made inside its trunk
  }

  // Each ResNet whose trunk convolutions were all folded: stem to layer4 as one native call in
  // oneDNN's blocked layout (resnet-trunk.ts). Its children become Identity but conv1, which
  // becomes the trunk; the folded layers it replaces are freed (it holds its own weights).
  #resnetTrunks(parents: Module[]): void {
    for (const p of parents) {
      if (!(p instanceof ResNet)) continue;
      const trunk = InferenceResNetTrunk.of(p, (m) => this.#folded.get(m));
      if (!trunk) continue;
      this.#trunks.push(trunk);
      const inside = new Set<Module>(TRUNK_CHILDREN.flatMap((c) => p.getModule(c).modules()));
      for (let i = this.#swaps.length - 1; i >= 0; i--) {
        const s = this.#swaps[i]!;
        if (inside.has(s.parent) || (s.parent === p && (TRUNK_CHILDREN as readonly string[]).includes(s.name))) this.#swaps.splice(i, 1);
      }
      for (const m of inside) {
        const f = this.#folded.get(m);
        if (!f) continue;
        f.dispose();
        this.#folded.delete(m);
        this.#trunkConvs++;
      }
      for (const c of TRUNK_CHILDREN) this.#swap(p, c, c === 'conv1' ? trunk : new Identity());
    }
  }

  /** Number of ResNet trunks that run as one native call each (stem to layer4). */
  get residualTrunks(): number {
    return this.#trunks.length;
  }

  // Every max pooling the direct kernel computes.
  #pools(parents: Module[]): void {
    for (const p of parents) {
      for (const [name, child] of p.namedChildren()) {
        if (child instanceof MaxPool2d && InferenceMaxPool2d.takes(child)) this.#swap(p, name, new InferenceMaxPool2d(child));
      }
    }
  }

  // Each ShuffleNetV2 unit whose convolutions were all folded: one native call (shuffle-unit.ts).
  #units(parents: Module[]): void {
    const replaced = new Map(this.#swaps.map((s) => [s.original, s.replacement]));
    for (const p of parents) {
      for (const [name, child] of p.namedChildren()) {
        if (!(child instanceof InvertedResidual)) continue;
        const unit = InferenceShuffleUnit.of(child, (m) => replaced.get(m));
        if (!unit) continue;
        this.#fusedUnits.push(unit);
        // The unit's own layers are no longer swapped: it runs in one call, and where it cannot
        // (not float32 CPU, autocast) it runs its original layers in eval mode, the same function.
        const inside = new Set<Module>([child.branch1, child.branch2]);
        for (let i = this.#swaps.length - 1; i >= 0; i--) if (inside.has(this.#swaps[i]!.parent)) this.#swaps.splice(i, 1);
        this.#swap(p, name, unit);
      }
    }
  }

  // Each ShuffleNetV2 whose every unit is fused: its stages as one call (InferenceShuffleStages),
  // swapped in for stage2; stage3 and stage4 become Identity.
  #stages(parents: Module[]): void {
    const fused = new Map(this.#fusedUnits.map((u) => [u.unit as Module, u]));
    for (const p of parents) {
      if (!(p instanceof ShuffleNetV2)) continue;
      const stages = SHUFFLE_STAGES.map((n) => p.getModule(n));
      if (!stages.every((s) => s instanceof Sequential)) continue;
      const units = stages.flatMap((s) => [...(s as Sequential)].map((u) => fused.get(u)));
      if (units.length === 0 || units.some((u) => u === undefined)) continue;
      const run = new InferenceShuffleStages(stages, units as InferenceShuffleUnit[]);
      this.#stageRuns++;
      SHUFFLE_STAGES.forEach((n, i) => this.#swap(p, n, i === 0 ? run : new Identity()));
    }
  }

  /** Number of ShuffleNetV2s whose stages run as one native call. */
  get fusedStages(): number {
    return this.#stageRuns;
  }

  /** Number of ShuffleNetV2 units that run as one native call each. */
  get fusedUnits(): number {
    return this.#fusedUnits.length;
  }

  /** Number of convolutions with a BatchNorm folded in (those inside a ResNet trunk included). */
  get foldedConvs(): number {
    return this.#folded.size + this.#trunkConvs;
  }

  #fold(conv: Conv2d | ExpertConv2d, bn: BatchNorm2d, relu: boolean): Module {
    let f = this.#folded.get(conv);
    if (!f) {
      const g = geometryOf(conv);
      // weights() may pack per-task factors into new tensors: they are freed once folded.
      f = conv instanceof ExpertConv2d ? new InferenceExpertConv2d(tidy(() => foldExpertBn(conv.weights(), bn)), g, relu) : new InferenceConv2d(foldConvBn(conv.weight, conv.bias, bn), g, relu);
      this.#folded.set(conv, f);
    }
    return f;
  }

  #swap(parent: Module, name: string, replacement: Module): void {
    this.#swaps.push({ parent, name, original: parent.getModule(name), replacement });
  }

  // conv, bn[, relu] in a row.
  #sequential(s: Sequential): void {
    const layers = [...s];
    for (let i = 0; i + 1 < layers.length; i++) {
      const conv = layers[i];
      const bn = layers[i + 1];
      if (!isConv(conv) || !foldable(bn)) continue;
      const relu = layers[i + 2] instanceof ReLU;
      this.#swap(s, String(i), this.#fold(conv, bn, relu));
      this.#swap(s, String(i + 1), new Identity());
      if (relu) this.#swap(s, String(i + 2), new Identity());
      i += relu ? 2 : 1;
    }
  }

  // Children conv<i> and bn<i> (torchvision's names), with the ReLU of RELU_AFTER.
  #named(p: Module): void {
    const reluAfter = RELU_AFTER.get(p.constructor) ?? [];
    const fused = new Set<string>();
    for (const [name, conv] of p.namedChildren()) {
      const i = /^conv(\d*)$/.exec(name)?.[1];
      if (i === undefined || !isConv(conv) || !p.hasModule(`bn${i}`)) continue;
      const bn = p.getModule(`bn${i}`);
      if (!foldable(bn)) continue;
      this.#swap(p, name, this.#fold(conv, bn, reluAfter.includes(i)));
      this.#swap(p, `bn${i}`, new Identity());
      fused.add(i);
    }
    // The ReLU child goes only when every convolution it follows has it fused.
    if (reluAfter.length > 0 && reluAfter.every((i) => fused.has(i)) && p.hasModule('relu') && p.getModule('relu') instanceof ReLU) {
      this.#swap(p, 'relu', new Identity());
    }
  }

  /**
   * fn with the folded layers in place and the network in eval mode, in inference mode. fn must
   * be synchronous (the network holds its folded layers only while it runs). Afterwards every
   * module has its own layers and training flag back. A nested run of the same plan just runs fn.
   */
  run<R>(fn: () => R): R {
    if (this.#disposed) throw new UserError('InferencePlan: used after dispose()');
    if (this.#applied) return inferenceMode(fn);
    // The modules in training mode now (the list of modules is the network's at plan time).
    const training = this.#modules.filter((m) => m.training);
    for (const s of this.#swaps) s.parent.registerModule(s.name, s.replacement);
    this.#applied = true;
    try {
      for (const m of training) m.training = false;
      return inferenceMode(fn);
    } finally {
      for (let i = this.#swaps.length - 1; i >= 0; i--) this.#swaps[i]!.parent.registerModule(this.#swaps[i]!.name, this.#swaps[i]!.original);
      for (const m of training) m.training = true;
      this.#applied = false;
    }
  }

  /** Frees the folded weights (the network's own are untouched). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const u of this.#fusedUnits) u.dispose();
    for (const t of this.#trunks) t.dispose();
    for (const f of this.#folded.values()) f.dispose();
    this.#folded.clear();
  }
}

/** fn under a plan of `model` built for this call alone (an evaluation pass). */
export function withInference<R>(model: Module, fn: () => R): R {
  const plan = InferencePlan.of(model);
  try {
    return plan.run(fn);
  } finally {
    plan.dispose();
  }
}
