// A registry backbone without its classifier: the feature extractor of a method's networks. Its
// children are registered on the owner, so state keys stay torchvision's (conv1.0.weight, ...).
import { Module } from '../../nn/module.js';
import { createModel } from '../../models/registry.js';
import type { ImageClassifier } from '../../models/classifier.js';
import type { Tensor } from '../../tensor/index.js';

/**
 * Builds `model` with a 1-class placeholder head and registers every child but `fc` on `owner`.
 * The owner must dispose the returned classifier's `fc` itself (it is not part of its state).
 */
export function adoptBackbone(owner: Module, model: string, inChannels: number): ImageClassifier {
  const backbone = createModel(model, { numClasses: 1, inChannels });
  for (const [name, child] of backbone.namedChildren()) if (name !== 'fc') owner.registerModule(name, child);
  return backbone;
}

/** Parameters of a backbone's feature extractor (everything but `fc`), in a fixed order. */
export function featureParameters(backbone: ImageClassifier): Tensor[] {
  return backbone.namedParameters().filter(([n]) => !n.startsWith('fc.')).map(([, p]) => p);
}

/** A backbone as a feature network: forward(images) -> pooled features (B, numFeatures). */
export class FeatureNet extends Module {
  readonly backbone: ImageClassifier;
  constructor(
    readonly model: string,
    inChannels: number,
  ) {
    super();
    this.backbone = adoptBackbone(this, model, inChannels);
  }
  get numFeatures(): number {
    return this.backbone.numFeatures;
  }
  override forward(images: Tensor): Tensor {
    return this.backbone.forwardFeatures(images);
  }
  override dispose(): void {
    super.dispose();
    this.backbone.fc.dispose();
  }
}
