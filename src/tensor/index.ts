// lorkd's tensor engine: libtorch through a thin native binding.
export { Tensor, type TensorOrScalar, type MemoryFormat, type ToOptions } from './tensor.js';
export * from './creation.js';
export * from './functional.js';
export * from './device.js';
export * from './autocast.js';
export * from './inference-mode.js';
export * from './handoff.js';
export { tidy, keep, track, scopeDepth } from './scope.js';
export { TorchError, UserError } from './errors.js';
export { type DType, type TypedArray, DTYPE_BYTES, isDType, viewAs, numelOf } from './dtype.js';
