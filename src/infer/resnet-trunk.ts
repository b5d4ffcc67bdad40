// A ResNet's trunk on the inference path: the stem convolution, the max pooling and every residual
// block of layer1..layer4 as one native call (native/src/resnet-trunk.cc: oneDNN's fused
// convolutions, or lorkd's direct loop and few-rows pass on small stages),
// where they ran as one pre-packed channels_last convolution per layer plus the residual sum and
// ReLU from TypeScript per block. Built by InferencePlan for a ResNet whose every convolution in
// the trunk was folded into a plain InferenceConv2d (a decomposition's expert convolutions keep
// their layers: their EKS pass is per row).
import { Module } from '../nn/module.js';
import { MaxPool2d } from '../nn/basic.js';
import { Sequential } from '../nn/sequential.js';
import { type Tensor, Tensor as TensorClass } from '../tensor/index.js';
import { N } from '../tensor/ops-native.js';
import type { NativeHandle } from '../tensor/native.js';
import { BasicBlock, Bottleneck, type ResNet } from '../models/resnet.js';
import { InferenceConv2d } from './layers.js';

/** The children of a ResNet that the trunk replaces, in the order its forward runs them. */
export const TRUNK_CHILDREN = ['conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4'] as const;

const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);

export class InferenceResNetTrunk extends Module {
  readonly #prepared: unknown;

  /**
   * `folded` gives each convolution's folded replacement. Returns null where one of the trunk's
   * convolutions was not folded into a plain InferenceConv2d, a block is not torchvision's, or
   * this libtorch has no oneDNN: the plan then keeps the layers.
   */
  static of(model: ResNet, folded: (m: Module) => Module | undefined): InferenceResNetTrunk | null {
    const conv = (m: Module, relu: boolean): unknown[] | null => {
      const f = folded(m);
      if (!(f instanceof InferenceConv2d) || f.relu !== relu || f.getBuffer('weight').dtype !== 'float32' || f.getBuffer('weight').device !== 'cpu') return null;
      const g = f.geometry;
      return [f.getBuffer('weight').handle, f.getBuffer('bias').handle, g.stride, g.padding, g.dilation, g.groups, f.relu];
    };
    const stem = conv(model.getModule('conv1'), true);
    const pool = model.getModule('maxpool');
    if (!stem || !(pool instanceof MaxPool2d)) return null;
    const o = pool.options;
    const poolArgs = [pair(pool.kernelSize), pair(o.stride ?? pool.kernelSize), pair(o.padding ?? 0), pair(o.dilation ?? 1), !!o.ceilMode];
    const blocks: unknown[] = [];
    for (const name of ['layer1', 'layer2', 'layer3', 'layer4']) {
      const layer = model.getModule(name);
      if (!(layer instanceof Sequential)) return null;
      for (const block of layer) {
        const names = block instanceof BasicBlock ? ['conv1', 'conv2'] : block instanceof Bottleneck ? ['conv1', 'conv2', 'conv3'] : null;
        if (!names) return null;
        const convs = names.map((c, i) => conv(block.getModule(c), i < names.length - 1));
        if (convs.some((c) => c === null)) return null;
        let down: unknown[] | null = null;
        if (block.hasModule('downsample')) {
          const d = block.getModule('downsample');
          if (!(d instanceof Sequential) || d.length !== 2) return null;
          down = conv(d.getModule('0'), false);
          if (!down) return null;
        }
        blocks.push([convs, down]);
      }
    }
    const prepared = N.resnetTrunkPrepare(stem, poolArgs, blocks);
    return prepared === null ? null : new InferenceResNetTrunk(TRUNK_CHILDREN.map((c) => model.getModule(c)), prepared);
  }

  private constructor(
    // The model's own children (before the plan swaps anything in), for where the call does not apply.
    readonly originals: Module[],
    prepared: unknown,
  ) {
    super();
    this.#prepared = prepared;
    this.training = false;
  }

  /** Lets go of the trunk's reordered weights now. */
  override dispose(): void {
    N.resnetTrunkFree(this.#prepared);
    super.dispose();
  }

  /**
   * The trunk in one call; where that does not apply (not float32 CPU, autocast), the model's own
   * layers in eval mode: the same function. Its output is a dense (NCHW) tensor.
   */
  override forward(x: Tensor): Tensor {
    const y = N.resnetTrunkRun(this.#prepared, x.handle) as NativeHandle | null;
    if (y !== null) return TensorClass.wrap(y);
    return this.originals.reduce((h, m) => m.forward(h), x);
  }
}
