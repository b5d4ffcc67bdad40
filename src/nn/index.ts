// lorkd's nn layer: Module with named parameters/buffers/children, layers, init, state dicts.
export { Module, type StateDict, type LoadStateDictOptions, type LoadStateDictResult } from './module.js';
export { StateDictError, type ShapeMismatch } from './errors.js';
export * from './layers.js';
export * as init from './init.js';
