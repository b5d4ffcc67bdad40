// ONNX export of experts (see export.ts for the file contract).
export { expertToOnnx, networkToOnnx, type OnnxNetwork, writeOnnx, saveOnnx, expertFileToOnnx, onnxMetadata, ONNX_OPSET, ONNX_IR_VERSION, type OnnxPreprocessing } from './export.js';
export { encodeModel, decodeModel } from './proto.js';
export { loadOnnxExpert, onnxExpertMeta, softmaxRows, type OnnxExpert } from './runtime.js';
