// lorkd: Low-Rank Knowledge Decomposition of medical foundation models, on libtorch.
// The package entry point re-exports each layer under its own name space.
export * as torch from './tensor/index.js';
export * as nn from './nn/index.js';
export * as models from './models/index.js';
export * as optim from './optim/index.js';
export * as data from './data/index.js';
export * as lorkd from './lorkd/index.js';
export { complexity, traceLayers, type ComplexityReport } from './eval/complexity.js';
export { accuracy, auc, confusionMatrix } from './eval/metrics.js';
export { saveSafetensors, loadSafetensors, encodeSafetensors, decodeSafetensors } from './io/safetensors.js';
export { saveExpertFile, loadExpertFile, type ExpertMeta } from './export/expert-file.js';
export { exportExpert, exportAllExperts } from './export/export-experts.js';
export { predict, predictInputs, predictInputsOnnx, type Prediction, type PredictReport } from './export/predict.js';
export * as onnx from './export/onnx/index.js';
export { decodeDicom, readDicomFrame } from './data/dicom.js';
export { trainFoundation, loadFoundation, saveFoundation } from './experiments/foundation.js';
export { trainDecomposition } from './experiments/decompose.js';
export { evaluateRun } from './experiments/report.js';
export { runTransfer, transferStudy, parseTransferSpec, type TransferSpec, type TransferResult } from './experiments/transfer.js';
export { resolveSource, type TransferSource } from './experiments/transfer-source.js';
export { mig } from './eval/mig.js';
export { linearCka, ckaMatrix } from './eval/cka.js';
export { cam, gradCam } from './eval/cam.js';
export * as serve from './serve/index.js';
export * as app from './app/index.js';
export * as report from './report/index.js';
