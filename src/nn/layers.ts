// The standard layers (one file per kind).
export { Conv2d, type Conv2dOptions } from './conv.js';
export { Linear } from './linear.js';
export { BatchNorm2d, type BatchNorm2dOptions } from './batchnorm.js';
export { LayerNorm, type LayerNormOptions } from './layernorm.js';
export { GELU } from './gelu.js';
export { MLPBlock } from './mlp.js';
export { MultiheadAttention } from './attention.js';
export { resizePositionEmbedding } from './position-embedding.js';
export { prependClassToken } from './class-token.js';
export { ReLU, MaxPool2d, type MaxPool2dOptions, AdaptiveAvgPool2d, Dropout, Flatten, Identity } from './basic.js';
export { Sequential } from './sequential.js';
