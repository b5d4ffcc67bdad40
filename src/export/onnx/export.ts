// An expert as an ONNX model (opset 13, dynamic batch), built from lorkd's module tree.
//
// The contract every runtime of these files relies on (the browser app among them):
//   input    `input`  float32 [N, C, S, S], already preprocessed: bilinear resize to S, pixel / 255,
//                     (x - mean) / std per channel
//   outputs  `logits` float32 [N, n_classes]
//            `cam`    float32 [N, h, w]: class activation map of the predicted (argmax) class at the
//                     last conv block's resolution, ReLU(sum_k w_ck A_k), not upsampled (for a
//                     network that ends in global average pooling and one linear layer this is
//                     Grad-CAM up to the positive factor 1 / (h w))
//   metadata_props  lorkd_preprocessing  JSON {"input_size", "resize", "mean", "std", "channels", "class_names"}
//                   lorkd_task, lorkd_model, lorkd_version
import { mkdirSync } from 'node:fs';
import { fileError, writeFileAtomic } from '../../io/atomic.js';
import path from 'node:path';
import { tidy } from '../../tensor/scope.js';
import { UserError } from '../../tensor/errors.js';
import type { ImageClassifier } from '../../models/classifier.js';
import type { Linear } from '../../nn/linear.js';
import { type ExpertMeta, loadExpertFile, lorkdVersion } from '../expert-file.js';
import { GraphBuilder, type Value } from './graph.js';
import { emitFeatureMap } from './emit.js';
import { encodeModel } from './proto.js';

/** The ONNX opset the files use. */
export const ONNX_OPSET = 13;
/** ONNX IR version written (onnx 1.8 and newer read it). */
export const ONNX_IR_VERSION = 7;

/** The preprocessing record stored as `lorkd_preprocessing`. */
export interface OnnxPreprocessing {
  input_size: number;
  resize: 'bilinear';
  mean: number[];
  std: number[];
  channels: number;
  class_names: string[];
}

/** The metadata_props of an exported file. */
export function onnxMetadata(meta: ExpertMeta): Record<string, string> {
  const pre: OnnxPreprocessing = {
    input_size: meta.inputSize,
    resize: meta.resize,
    mean: meta.mean,
    std: meta.std,
    channels: meta.channels,
    class_names: meta.classNames,
  };
  return {
    lorkd_preprocessing: JSON.stringify(pre),
    lorkd_task: meta.task,
    lorkd_model: meta.model,
    lorkd_version: meta.lorkdVersion ?? lorkdVersion(),
  };
}

/**
 * A network as ONNX sees it: one or more feature branches (ShuffleNetV2 / ResNet backbones, each
 * up to its last conv block) whose maps are concatenated along channels, then global average
 * pooling and one linear head. A plain expert is one branch with its own `fc`; KF's deployed pair
 * is CKN + TSN_t with the classifier over their concatenated features.
 */
export interface OnnxNetwork {
  /** [name prefix, backbone] per branch ("" for a single network). */
  branches: [string, ImageClassifier][];
  fc: Linear;
}

/** logits = Gemm(pooled) with the head `fc` on pooled features [k]; returns the head weight's initializer. */
export function emitGemmHead(g: GraphBuilder, fc: Linear, pooled: Value): { logits: string; weight: string } {
  const k = pooled.shape[0]!;
  if (k !== fc.inFeatures) throw new UserError(`ONNX export: the head takes ${fc.inFeatures} features, the last blocks give ${k}`);
  const weight = g.float('fc.weight', Float32Array.from(fc.weight.toArray() as ArrayLike<number>), [fc.outFeatures, k]);
  const bias = g.float('fc.bias', fc.bias ? Float32Array.from(fc.bias.toArray() as ArrayLike<number>) : new Float32Array(fc.outFeatures), [fc.outFeatures]);
  return { logits: g.op('Gemm', [pooled.name, weight, bias], 'fc', { transB: 1 }), weight };
}

/** pooled = Flatten(GAP(A)) of the feature map A [K, h, w]: [K]. */
export function emitGlobalPool(g: GraphBuilder, a: Value): Value {
  return { name: g.op('Flatten', [g.op('GlobalAveragePool', [a.name], 'avgpool')], 'avgpool', { axis: 1 }), shape: [a.shape[0]!] };
}

/** pooled = Flatten(GAP(A)) and logits = Gemm(pooled) on the feature map A; `weight` is the head's initializer. */
export function emitPooledHead(g: GraphBuilder, fc: Linear, a: Value): { pooled: string; logits: string; weight: string } {
  const pooled = emitGlobalPool(g, a);
  return { pooled: pooled.name, ...emitGemmHead(g, fc, pooled) };
}

/** logits = Gemm(GAP(A)) and cam = ReLU(sum_k W[argmax, k] A_k) on the (concatenated) feature map A. */
function emitHead(g: GraphBuilder, fc: Linear, a: Value): { logits: string; cam: string } {
  const k = a.shape[0]!;
  const { logits, weight } = emitPooledHead(g, fc, a);
  const cls = g.op('ArgMax', [logits], 'cam', { axis: 1, keepdims: 0 });
  const wc = g.op('Reshape', [g.op('Gather', [weight, cls], 'cam', { axis: 0 }), g.ints([-1, k, 1, 1])], 'cam');
  const sum = g.op('ReduceSum', [g.op('Mul', [a.name, wc], 'cam'), g.ints([1])], 'cam', { keepdims: 0 });
  return { logits, cam: g.op('Relu', [sum], 'cam') };
}

/** The ONNX bytes of a network (see OnnxNetwork), its weights as they are now, in eval mode. */
export function networkToOnnx(net: OnnxNetwork, meta: ExpertMeta): Uint8Array {
  if (net.fc.outFeatures !== meta.classNames.length) {
    throw new UserError(`ONNX export: the model's head has ${net.fc.outFeatures} outputs but ${meta.classNames.length} class names are given`);
  }
  if (net.branches.length === 0) throw new UserError('ONNX export: the network has no feature branch');
  return tidy(() => {
    const g = new GraphBuilder();
    const input: Value = { name: g.fresh('input'), shape: [meta.channels, meta.inputSize, meta.inputSize] };
    const maps = net.branches.map(([prefix, model]) => emitFeatureMap(g, model, input, prefix));
    let a = maps[0]!;
    if (maps.length > 1) {
      const hw = a.shape.slice(1).join('x');
      const other = maps.find((m) => m.shape.slice(1).join('x') !== hw);
      if (other) throw new UserError(`ONNX export: the branches' feature maps differ in size (${hw} and ${other.shape.slice(1).join('x')})`);
      a = { name: g.op('Concat', maps.map((m) => m.name), 'features', { axis: 1 }), shape: [maps.reduce((n, m) => n + m.shape[0]!, 0), ...a.shape.slice(1)] };
    }
    const { logits, cam } = emitHead(g, net.fc, a);
    g.rename(logits, 'logits');
    g.rename(cam, 'cam');
    const graph = g.graph(`lorkd_${meta.task}`, [input], [
      { name: 'logits', shape: [meta.classNames.length] },
      { name: 'cam', shape: a.shape.slice(1) },
    ]);
    return encodeModel({
      ir_version: ONNX_IR_VERSION,
      opset_import: [{ domain: '', version: ONNX_OPSET }],
      producer_name: 'lorkd',
      producer_version: meta.lorkdVersion ?? lorkdVersion(),
      doc_string: `lorkd expert for task ${meta.task} (${meta.model}); input: preprocessed [N, ${meta.channels}, ${meta.inputSize}, ${meta.inputSize}]`,
      graph,
      metadata_props: Object.entries(onnxMetadata(meta)).map(([key, value]) => ({ key, value })),
    });
  });
}

/**
 * The ONNX bytes of `model` (a ShuffleNetV2 or ResNet from src/models, its weights as they are
 * now, used in eval mode) with the preprocessing and names of `meta`.
 */
export function expertToOnnx(model: ImageClassifier, meta: ExpertMeta): Uint8Array {
  return networkToOnnx({ branches: [['', model]], fc: model.fc }, meta);
}

/** Writes ONNX bytes to `file` atomically (src/io/atomic.ts), creating its folder; returns the file name. */
export function writeOnnx(file: string, bytes: Uint8Array): string {
  try {
    mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  } catch (e) {
    throw fileError(path.dirname(file), e, 'create the folder of');
  }
  writeFileAtomic(file, bytes);
  return file;
}

/** Writes `model` as an ONNX file; returns the file name. */
export function saveOnnx(file: string, model: ImageClassifier, meta: ExpertMeta): string {
  return writeOnnx(file, expertToOnnx(model, meta));
}

/** Converts an expert file (lorkd export's safetensors) to an ONNX file; returns the file name. */
export function expertFileToOnnx(expertFile: string, out: string): string {
  const { model, meta } = loadExpertFile(expertFile);
  try {
    return saveOnnx(out, model, meta);
  } finally {
    model.dispose();
  }
}
