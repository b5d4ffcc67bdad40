// ONNX export of a ViT foundation: onnxruntime-node runs the file and gives lorkd's pooled features
// (the class token after the final LayerNorm) and unified logits, within 1e-4, for a dynamic batch,
// at an input side other than the one the position embedding was made for (resized at export).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { randn, tidy, noGrad, manualSeed, type Tensor } from '../src/tensor/index.js';
import { createModel } from '../src/models/index.js';
import { foundationToOnnx } from '../src/export/onnx/foundation.js';
import { decodeModel } from '../src/export/onnx/index.js';

const S = 32;
const TASKS = [
  { name: 'a', classNames: ['x', 'y'] },
  { name: 'b', classNames: ['p', 'q', 'r'] },
];

function relDiff(a: ArrayLike<number>, b: Tensor): number {
  const r = b.toArray() as Float32Array;
  assert.equal(a.length, r.length);
  let d = 0;
  let s = 0;
  for (let i = 0; i < r.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - r[i]!));
    s = Math.max(s, Math.abs(r[i]!));
  }
  assert.ok(s > 0.1, `outputs are not trivially small (${s})`);
  return d / Math.max(1, s);
}

test('vit_tiny_p8 foundation exported to ONNX: onnxruntime-node gives lorkd forward features and logits (1e-4), any batch', { timeout: 120_000 }, async () => {
  manualSeed(5);
  const model = createModel('vit_tiny_p8', { numClasses: 5 });
  // Redrawn weights: the zero-initialised head and class token would hide mistakes.
  noGrad(() => {
    for (const [k, p] of model.namedParameters()) if (k === 'fc.weight' || k === 'fc.bias' || k === 'class_token' || k.includes('ln')) p.normal_(k.endsWith('weight') && k.includes('ln') ? 1 : 0, 0.2);
  });
  model.eval();
  const bytes = foundationToOnnx(model, { model: 'vit_tiny_p8', tasks: TASKS, input: S, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  const ops = new Set((decodeModel(bytes) as { graph: { node: { op_type: string }[] } }).graph.node.map((n) => n.op_type));
  for (const op of ['Erf', 'Softmax', 'MatMul', 'ReduceMean']) assert.ok(ops.has(op), `the graph uses ${op}`);
  const session = await ort.InferenceSession.create(bytes);
  for (const n of [1, 3]) {
    const x = randn([n, 3, S, S]);
    const out = await session.run({ input: new ort.Tensor('float32', x.toArray() as Float32Array, x.shape) });
    assert.deepEqual(out.features!.dims, [n, 192]);
    assert.deepEqual(out.logits!.dims, [n, 5]);
    tidy(() => {
      const features = noGrad(() => model.forwardFeatures(x));
      const logits = noGrad(() => model.forwardHead(features));
      const df = relDiff(out.features!.data as Float32Array, features);
      const dl = relDiff(out.logits!.data as Float32Array, logits);
      console.log(`batch ${n}: features ${df}, logits ${dl}`);
      assert.ok(df <= 1e-4, `features differ by ${df}`);
      assert.ok(dl <= 1e-4, `logits differ by ${dl}`);
    });
    x.dispose();
  }
  model.dispose();
});

test('a ViT input that is not a multiple of the patch is refused at export, in one line', () => {
  const model = createModel('vit_tiny_p8', { numClasses: 5 });
  assert.throws(() => foundationToOnnx(model, { model: 'vit_tiny_p8', tasks: TASKS, input: 30, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }), /multiple of the patch 8/);
  model.dispose();
});
