// lorkd's backbones, torchvision-compatible, and the registry by name.
export { ImageClassifier, type ModelOptions } from './classifier.js';
export { ShuffleNetV2, InvertedResidual, channelShuffle, catShuffle, SHUFFLENET_V2_WIDTHS, SHUFFLENET_V2_REPEATS, type ShuffleNetV2Variant } from './shufflenetv2.js';
export { ResNet, BasicBlock, Bottleneck, RESNET_CONFIGS, type ResNetDepth, type ResNetBlock } from './resnet.js';
export { VisionTransformer, EncoderBlock, Encoder, VIT_CONFIGS, type ViTConfig, type ViTVariant } from './vit.js';
export { createModel, listModels, modelDefaults, modelRecipe, type ModelFactory, type ModelDefaults } from './registry.js';
