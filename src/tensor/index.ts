// lorkd's tensor engine: libtorch through a thin native binding.
export { Tensor, type TensorOrScalar, type MemoryFormat } from './tensor.js';
export * from './creation.js';
export * from './functional.js';
export { tidy, keep, track, scopeDepth } from './scope.js';
export { TorchError, UserError } from './errors.js';
export { type DType, type TypedArray, DTYPE_BYTES, isDType, viewAs, numelOf } from './dtype.js';
