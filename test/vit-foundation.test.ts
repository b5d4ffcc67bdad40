// A ViT foundation through the command line: `lorkd foundation --arch vit_tiny_p8` trains and
// saves it; it is the teacher of `lorkd decompose` with feature KD (its 192 pooled features go
// through LoRKD's projection to the student's 1024); `lorkd export --format onnx` writes it as an
// ONNX teacher that decompose reads back; `lorkd params` counts it; --init loads torchvision's names
// (heads.head renamed, a position embedding made for another size resized); a bad --input is one line.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeTaskNpz, lorkd, lorkdOk, lastJson } from './helpers/pipeline.js';
import { manualSeed, noGrad, tidy, randn } from '../src/tensor/index.js';
import { VisionTransformer, VIT_CONFIGS, createModel } from '../src/models/index.js';
import { resizePositionEmbedding } from '../src/nn/index.js';
import { saveSafetensors } from '../src/io/safetensors.js';
import { loadFoundation, loadInit } from '../src/experiments/foundation-file.js';
import { createProgress } from '../src/experiments/progress.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-vit-foundation-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = path.join(dir, 'a2.npz');
const B = path.join(dir, 'b3.npz');
writeTaskNpz(A, { classes: 2, sizes: { train: 16, val: 6, test: 6 }, seed: 1 });
writeTaskNpz(B, { classes: 3, sizes: { train: 16, val: 6, test: 6 }, seed: 2 });
const DATA = ['--tasks', `${A},${B}`, '--input', '16', '--batch', '8', '--epochs', '1', '--quiet', '--json'];

test('lorkd foundation --arch vit_tiny_p8, then decompose from it (feature KD), its ONNX export as teacher, and params', { timeout: 300_000 }, () => {
  const f = path.join(dir, 'f');
  const r = lastJson(lorkdOk(['foundation', '--arch', 'vit_tiny_p8', ...DATA, '--lr', '0.01', '--out', f]).stdout) as { file: string };
  const { model, meta } = loadFoundation(r.file);
  assert.equal(meta.model, 'vit_tiny_p8');
  assert.ok(model instanceof VisionTransformer && model.numFeatures === 192 && model.numClasses === 5);
  model.dispose();
  const d = lastJson(lorkdOk(['decompose', '--foundation', r.file, '--kd', 'feature', '--model', 'shufflenet_v2_x0_5', '--rank', '2', ...DATA, '--out', path.join(dir, 'd')]).stdout) as { history: { loss: number }[] };
  assert.ok(Number.isFinite(d.history[0]!.loss));
  const onnx = path.join(dir, 'teacher.onnx');
  lorkdOk(['export', '--format', 'onnx', '--model', r.file, '--out', onnx]);
  assert.ok(existsSync(onnx));
  const o = lastJson(lorkdOk(['decompose', '--foundation', onnx, '--kd', 'feature', '--model', 'shufflenet_v2_x0_5', '--rank', '2', ...DATA, '--out', path.join(dir, 'd-onnx')]).stdout) as { history: { loss: number }[] };
  assert.ok(Number.isFinite(o.history[0]!.loss));
  const p = lastJson(lorkdOk(['params', '--model', 'vit_tiny_p8', '--tasks', '1', '--input', '64', '--json']).stdout) as { flops_deployment: number; params_deployment: number };
  assert.ok(p.flops_deployment > 3.5e8 && p.flops_deployment < 3.9e8, `${p.flops_deployment}`);
});

test('--init loads torchvision ViT names: heads.head.* as fc.*, a position embedding made for 32 px resized to the model\'s 64 px grid', () => {
  manualSeed(2);
  // A torchvision-named vit_tiny_p8 state dict made for 32 px (grid 4: 17 tokens), 5 classes.
  const src = new VisionTransformer({ ...VIT_CONFIGS.vit_tiny_p8, imageSize: 32 }, { numClasses: 5 });
  noGrad(() => {
    src.getModule('encoder').getParameter('pos_embedding').normal_(0, 1);
    src.fc.weight.normal_(0, 1);
  });
  const file = path.join(dir, 'tv.safetensors');
  tidy(() => saveSafetensors(file, new Map([...src.stateDict()].map(([k, t]) => [k.startsWith('fc.') ? `heads.head.${k.slice(3)}` : k, t]))));
  const model = createModel('vit_tiny_p8', { numClasses: 5 }) as VisionTransformer;
  loadInit(model, file, createProgress({ quiet: true }));
  tidy(() => {
    const pos = model.getModule('encoder').getParameter('pos_embedding');
    assert.deepEqual(pos.shape, [1, 65, 192], 'the 8 x 8 grid of 64 px');
    const expected = resizePositionEmbedding(src.getModule('encoder').getParameter('pos_embedding'), 8);
    assert.equal(pos.sub(expected).abs().sum().item(), 0, 'resized as resizePositionEmbedding (torchvision interpolate_embeddings)');
    assert.equal(model.fc.weight.sub(src.fc.weight).abs().sum().item(), 0, 'the head came from heads.head');
    assert.equal(model.classToken.sub(src.classToken).abs().sum().item(), 0);
    // At 32 px the loaded model computes what the source computes (its grid resized back to 4 x 4 is not the identity: close, not equal).
    const x = randn([2, 3, 32, 32]);
    const d = noGrad(() => model.eval().forward(x).sub(src.eval().forward(x)).abs().amax([0, 1]).item());
    assert.ok(Number.isFinite(d));
  });
  model.dispose();
  src.dispose();
});

test('a ViT foundation at an input that is not a multiple of the patch is refused in one line', { timeout: 120_000 }, () => {
  const r = lorkd(['foundation', '--arch', 'vit_tiny_p8', '--tasks', A, '--input', '20', '--batch', '8', '--epochs', '1', '--quiet', '--out', path.join(dir, 'bad')]);
  assert.notEqual(r.status, 0);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /multiple of the patch 8/);
});
