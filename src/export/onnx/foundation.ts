// A foundation model (one backbone, one unified head over every task's classes) as an ONNX file
// that `--foundation FILE.onnx` takes as a teacher (src/experiments/teacher/):
//   input    `input`     float32 [N, 3, S, S], preprocessed as lorkd_preprocessing says
//   outputs  `features`  float32 [N, F]: the pooled features (global average pooling; a ViT's
//                        class token after its final LayerNorm)
//            `logits`    float32 [N, C]: the unified head over all C classes, tasks in order
//   metadata_props  lorkd_format "foundation", lorkd_preprocessing (no class names: tasks may
//                   share them), lorkd_tasks JSON [{name, classNames}], lorkd_model, lorkd_version
import { tidy } from '../../tensor/scope.js';
import { UserError } from '../../tensor/errors.js';
import type { ImageClassifier } from '../../models/classifier.js';
import { lorkdVersion } from '../expert-file.js';
import { GraphBuilder, type Value } from './graph.js';
import { emitFeatureMap } from './emit.js';
import { encodeModel } from './proto.js';
import { ONNX_IR_VERSION, ONNX_OPSET, emitGemmHead, emitGlobalPool } from './export.js';
import { emitViTFeatures } from './vit.js';
import { VisionTransformer } from '../../models/vit.js';

export interface OnnxFoundationMeta {
  model: string;
  tasks: { name: string; classNames: string[] }[];
  input: number;
  mean: number[];
  std: number[];
}

/** The ONNX bytes of a foundation model (its weights as they are now, eval mode). */
export function foundationToOnnx(model: ImageClassifier, meta: OnnxFoundationMeta): Uint8Array {
  const classes = meta.tasks.reduce((a, t) => a + t.classNames.length, 0);
  if (model.fc.outFeatures !== classes) throw new UserError(`ONNX export: the foundation's head has ${model.fc.outFeatures} outputs, its tasks ${classes} classes`);
  return tidy(() => {
    const g = new GraphBuilder();
    const input: Value = { name: g.fresh('input'), shape: [3, meta.input, meta.input] };
    // A ViT's pooled feature is its class token; a CNN's, the global average of its last map.
    const pooled = model instanceof VisionTransformer ? emitViTFeatures(g, model, input) : emitGlobalPool(g, emitFeatureMap(g, model, input));
    const { logits } = emitGemmHead(g, model.fc, pooled);
    g.rename(pooled.name, 'features');
    g.rename(logits, 'logits');
    const graph = g.graph('lorkd_foundation', [input], [
      { name: 'features', shape: [model.fc.inFeatures] },
      { name: 'logits', shape: [classes] },
    ]);
    const pre = { input_size: meta.input, resize: 'bilinear', mean: meta.mean, std: meta.std, channels: 3 };
    const props = { lorkd_format: 'foundation', lorkd_preprocessing: JSON.stringify(pre), lorkd_tasks: JSON.stringify(meta.tasks), lorkd_model: meta.model, lorkd_version: lorkdVersion() };
    return encodeModel({
      ir_version: ONNX_IR_VERSION,
      opset_import: [{ domain: '', version: ONNX_OPSET }],
      producer_name: 'lorkd',
      producer_version: lorkdVersion(),
      doc_string: `lorkd foundation (${meta.model}); outputs: pooled features and unified logits`,
      graph,
      metadata_props: Object.entries(props).map(([key, value]) => ({ key, value })),
    });
  });
}
