// The shape every lorkd backbone shares (timm's forward_features / forward_head split).
import type { Tensor } from '../tensor/tensor.js';
import { Module, type StateDict } from '../nn/module.js';
import { Linear } from '../nn/linear.js';
import { Sequential, layerChain } from '../nn/sequential.js';

/**
 * m.forward(x, ...call), where a Sequential runs its layers in order and hands each the per-call
 * arguments (nn's Sequential.forward takes none; see forwardFeatures).
 */
export function runWith(m: Module, x: Tensor, call: readonly unknown[]): Tensor {
  if (!(m instanceof Sequential)) return m.forward(x, ...call);
  return layerChain(m, x, (layer, y) => runWith(layer, y, call));
}

/** Options common to every model factory. */
export interface ModelOptions {
  /** Output classes of the `fc` head (default 1000, as ImageNet). */
  numClasses?: number;
  /** Channels of the input images (default 3). */
  inChannels?: number;
}

/**
 * An image classifier: a backbone that ends in globally pooled features, then a linear head
 * registered as `fc`.
 */
export abstract class ImageClassifier extends Module {
  /** Width of the pooled features (the input of `fc`). */
  abstract readonly numFeatures: number;

  /**
   * Pooled features [N, numFeatures] of images [N, C, H, W]. `call` are per-call arguments handed
   * unchanged to every layer (LoRKD's expert convs take the task routing and EKS strategy this
   * way; plain layers ignore them). Nothing is stored on the model (docs/ARCHITECTURE.md).
   */
  abstract forwardFeatures(x: Tensor, ...call: unknown[]): Tensor;

  /** Logits [N, numClasses] from pooled features. */
  forwardHead(features: Tensor): Tensor {
    return this.fc.forward(features);
  }

  override forward(x: Tensor, ...call: unknown[]): Tensor {
    return this.forwardHead(this.forwardFeatures(x, ...call));
  }

  get fc(): Linear {
    return this.getModule<Linear>('fc');
  }
  get numClasses(): number {
    return this.fc.outFeatures;
  }

  /**
   * A torchvision state dict of this architecture made loadable here (renamed or resized entries);
   * the identity where the names already match (ResNet, ShuffleNetV2). Entries not returned are disposed.
   */
  fromTorchvision(sd: StateDict): StateDict {
    return sd;
  }

  /** Replaces the head by a freshly initialised Linear(numFeatures, numClasses); the old one is disposed. */
  resetClassifier(numClasses: number): Linear {
    const old = this.fc;
    const fc = this.registerModule('fc', new Linear(this.numFeatures, numClasses));
    old.dispose();
    return fc;
  }
}
