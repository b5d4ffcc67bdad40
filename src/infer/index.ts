// The inference path: BatchNorm folded, ReLU fused, weights pre-packed, libtorch's inference mode.
export { InferencePlan, withInference } from './plan.js';
export { foldConvBn, foldExpertBn, type FoldedConv, type FoldedExpert } from './fold.js';
export { InferenceConv2d, InferenceExpertConv2d, type ConvGeometry } from './layers.js';
export { fewRowsLimits, fewRowsRuns, fewRowsIsa, type FewRowsLimits, type FewRowsIsa } from './few-rows.js';
export { directConv, directConvRuns, type DirectConvSettings } from './direct-conv.js';
