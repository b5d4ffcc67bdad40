// Models by name (timm's registry): name -> factory that only sets arguments.
import { UserError } from '../tensor/errors.js';
import type { ImageClassifier, ModelOptions } from './classifier.js';
import { ShuffleNetV2 } from './shufflenetv2.js';
import { ResNet } from './resnet.js';

export type ModelFactory = (o: ModelOptions) => ImageClassifier;

const registry = new Map<string, ModelFactory>([
  ['shufflenet_v2_x0_5', (o) => new ShuffleNetV2('x0_5', o)],
  ['shufflenet_v2_x1_0', (o) => new ShuffleNetV2('x1_0', o)],
  ['shufflenet_v2_x1_5', (o) => new ShuffleNetV2('x1_5', o)],
  ['shufflenet_v2_x2_0', (o) => new ShuffleNetV2('x2_0', o)],
  ['resnet18', (o) => new ResNet('resnet18', o)],
  ['resnet34', (o) => new ResNet('resnet34', o)],
  ['resnet50', (o) => new ResNet('resnet50', o)],
]);

/** Names of every registered model (torchvision's names), sorted. */
export function listModels(): string[] {
  return [...registry.keys()].sort();
}

/** Builds a model by name with numClasses (default 1000) and inChannels (default 3). */
export function createModel(name: string, o: ModelOptions = {}): ImageClassifier {
  const factory = registry.get(name);
  if (!factory) throw new UserError(`unknown model "${name}"; known models: ${listModels().join(', ')}`);
  for (const [k, v] of Object.entries(o)) {
    if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new UserError(`createModel: ${k} must be a positive integer, got ${v}`);
  }
  return factory(o);
}
