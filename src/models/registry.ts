// Models by name (timm's registry): name -> factory that only sets arguments, and the model's
// default preprocessing (timm's pretrained config: input size, mean, std, resize).
import { UserError } from '../tensor/errors.js';
import type { ImageClassifier, ModelOptions } from './classifier.js';
import { ShuffleNetV2 } from './shufflenetv2.js';
import { ResNet } from './resnet.js';
import { VisionTransformer } from './vit.js';

export type ModelFactory = (o: ModelOptions) => ImageClassifier;

/** How a model's weights expect their input (timm's default_cfg; torchvision's weight transforms). */
export interface ModelDefaults {
  /** Side of the square input. */
  input: number;
  mean: readonly number[];
  std: readonly number[];
  /** How images are brought to `input` (lorkd resizes with bilinear interpolation, no crop). */
  resize: 'bilinear';
}

// torchvision's ImageNet weights (IMAGENET1K_V1): 224 px, ImageNet mean and std, bilinear resize.
const IMAGENET: ModelDefaults = { input: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], resize: 'bilinear' };
// lorkd's small models, trained from scratch on the suite: the paper's code's mean = std = 0.5.
const SMALL64: ModelDefaults = { input: 64, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], resize: 'bilinear' };

const registry = new Map<string, { build: ModelFactory; defaults: ModelDefaults }>([
  ['shufflenet_v2_x0_5', { build: (o) => new ShuffleNetV2('x0_5', o), defaults: IMAGENET }],
  ['shufflenet_v2_x1_0', { build: (o) => new ShuffleNetV2('x1_0', o), defaults: IMAGENET }],
  ['shufflenet_v2_x1_5', { build: (o) => new ShuffleNetV2('x1_5', o), defaults: IMAGENET }],
  ['shufflenet_v2_x2_0', { build: (o) => new ShuffleNetV2('x2_0', o), defaults: IMAGENET }],
  ['resnet18', { build: (o) => new ResNet('resnet18', o), defaults: IMAGENET }],
  ['resnet34', { build: (o) => new ResNet('resnet34', o), defaults: IMAGENET }],
  ['resnet50', { build: (o) => new ResNet('resnet50', o), defaults: IMAGENET }],
  ['vit_b_16', { build: (o) => new VisionTransformer('vit_b_16', o), defaults: IMAGENET }],
  ['vit_tiny_p8', { build: (o) => new VisionTransformer('vit_tiny_p8', o), defaults: SMALL64 }],
]);

/** Names of every registered model (torchvision's names), sorted. */
export function listModels(): string[] {
  return [...registry.keys()].sort();
}

function entry(name: string) {
  const e = registry.get(name);
  if (!e) throw new UserError(`unknown model "${name}"; known models: ${listModels().join(', ')}`);
  return e;
}

/** Builds a model by name with numClasses (default 1000) and inChannels (default 3). */
export function createModel(name: string, o: ModelOptions = {}): ImageClassifier {
  const { build } = entry(name);
  for (const [k, v] of Object.entries(o)) {
    if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new UserError(`createModel: ${k} must be a positive integer, got ${v}`);
  }
  const model = build(o);
  built.set(model, { name, options: { ...o } });
  return model;
}

// What every model createModel made was built from, so that another thread can build its twin
// (lorkd serve's forward worker, src/serve/mirror.ts).
const built = new WeakMap<ImageClassifier, { name: string; options: ModelOptions }>();

/** The registry name and options `model` was built with by createModel (undefined: not built there). */
export function modelRecipe(model: ImageClassifier): { name: string; options: ModelOptions } | undefined {
  const r = built.get(model);
  return r && { name: r.name, options: { ...r.options } };
}

/** The default preprocessing of a registered model (a copy). */
export function modelDefaults(name: string): ModelDefaults {
  const d = entry(name).defaults;
  return { input: d.input, mean: [...d.mean], std: [...d.std], resize: d.resize };
}
