// The shape every lorkd backbone shares (timm's forward_features / forward_head split).
import type { Tensor } from '../tensor/tensor.js';
import { Module } from '../nn/module.js';
import { Linear } from '../nn/linear.js';

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

  /** Pooled features [N, numFeatures] of images [N, C, H, W]. */
  abstract forwardFeatures(x: Tensor): Tensor;

  /** Logits [N, numClasses] from pooled features. */
  forwardHead(features: Tensor): Tensor {
    return this.fc.forward(features);
  }

  override forward(x: Tensor): Tensor {
    return this.forwardHead(this.forwardFeatures(x));
  }

  get fc(): Linear {
    return this.getModule<Linear>('fc');
  }
  get numClasses(): number {
    return this.fc.outFeatures;
  }

  /** Replaces the head by a freshly initialised Linear(numFeatures, numClasses); the old one is disposed. */
  resetClassifier(numClasses: number): Linear {
    const old = this.fc;
    const fc = this.registerModule('fc', new Linear(this.numFeatures, numClasses));
    old.dispose();
    return fc;
  }
}
