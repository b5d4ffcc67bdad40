// The standard layers (one file per kind).
export { Conv2d, type Conv2dOptions } from './conv.js';
export { Linear } from './linear.js';
export { BatchNorm2d, type BatchNorm2dOptions } from './batchnorm.js';
export { ReLU, MaxPool2d, type MaxPool2dOptions, AdaptiveAvgPool2d, Dropout, Flatten, Identity } from './basic.js';
export { Sequential } from './sequential.js';
