// ONNX export: onnxruntime-node runs the file and gives lorkd's logits (1e-4) and predictions on
// the bundled MedMNIST test splits (ShuffleNetV2, and ResNet for the residual adds); the `cam`
// output equals ReLU(sum_k w_ck A_k) computed directly from lorkd's own feature map, and equals
// Grad-CAM from lorkd's autograd up to 1 / (h w); batch is dynamic; the metadata carries the
// preprocessing record; the schema is the vendored onnx.proto's; `lorkd export --format onnx`
// from an expert file and from a run; one-line CLI errors; the optional python3-onnx checker;
// predict with the .onnx file equals predict with the .safetensors expert.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import protobuf from 'protobufjs';
import * as ort from 'onnxruntime-node';
import { type Tensor, cat, einsum, keep, manualSeed, memory, noGrad, randnLike, setNumThreads, tensor, tidy, UserError } from '../src/tensor/index.js';
import { KfExpert, saveKfExpert } from '../src/experiments/methods/kf-expert.js';
import { createModel, type ImageClassifier } from '../src/models/index.js';
import { BatchNorm2d } from '../src/nn/index.js';
import { loadMedMnist } from '../src/data/medmnist.js';
import { type ExpertMeta, saveExpertFile } from '../src/export/expert-file.js';
import { predictInputs, predictInputsOnnx, preprocess } from '../src/export/predict.js';
import { decodeModel, expertToOnnx, ONNX_OPSET } from '../src/export/onnx/index.js';
import { featureModules } from '../src/export/onnx/emit.js';
import { ONNX_SCHEMA } from '../src/export/onnx/schema.js';
import { DecompositionModel } from '../src/lorkd/decomposition.js';
import { saveDecomposition } from '../src/lorkd/checkpoint.js';
import { expertModel } from '../src/lorkd/deploy.js';
import { lorkd, lorkdOk, lastJson, REPO } from './helpers/pipeline.js';
import { PYTHON } from './helpers/python.js';

setNumThreads(1);
const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-onnx-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const S = 32;
const bundled = (name: string): string => path.join(REPO, 'data', 'medmnist', `${name}.npz`);

function metaFor(model: string, task: string, classes: number, size = S): ExpertMeta {
  return {
    model, task, classNames: Array.from({ length: classes }, (_, k) => `class ${k}`), inputSize: size, channels: 3, resize: 'bilinear',
    mean: [0.45, 0.5, 0.55], std: [0.22, 0.25, 0.28],
  };
}

/** The preprocessed test split of a bundled task (lorkd predict's own preprocessing), at most `limit` images. */
function testSplit(task: string, meta: ExpertMeta, limit = Infinity): { x: Tensor; labels: Uint8Array | Int32Array; n: number } {
  const s = loadMedMnist(bundled(task)).splits.test;
  const n = Math.min(s.n, limit);
  return { x: preprocess(meta, s.images.subarray(0, n * 3 * s.height * s.width), n, s.height, s.width), labels: s.labels, n };
}

/**
 * A model whose BatchNorm statistics are calibrated (momentum 1) on the task's preprocessed train
 * images, so activations and logits vary from image to image as in a trained network.
 */
function calibrated(arch: string, task: string, classes: number, seed: number, size = S): { model: ImageClassifier; meta: ExpertMeta } {
  manualSeed(seed);
  const meta = metaFor(arch, task, classes, size);
  const model = createModel(arch, { numClasses: classes });
  for (const m of model.modules()) if (m instanceof BatchNorm2d) m.momentum = 1;
  tidy(() => {
    const s = loadMedMnist(bundled(task)).splits.train;
    const n = 64;
    noGrad(() => model.train().forward(preprocess(meta, s.images.subarray(0, n * 3 * s.height * s.width), n, s.height, s.width)));
  });
  model.eval();
  return { model, meta };
}

async function runOnnx(bytes: Uint8Array | string, x: Tensor): Promise<{ logits: Float32Array; cam: Float32Array; camDims: readonly number[] }> {
  const session = await ort.InferenceSession.create(bytes as Uint8Array);
  const out = await session.run({ input: new ort.Tensor('float32', x.toArray() as Float32Array, x.shape) });
  await session.release();
  return { logits: out.logits!.data as Float32Array, cam: out.cam!.data as Float32Array, camDims: out.cam!.dims };
}

const argmaxRows = (a: ArrayLike<number>, k: number): number[] =>
  Array.from({ length: a.length / k }, (_, i) => {
    let best = 0;
    for (let j = 1; j < k; j++) if (a[i * k + j]! > a[i * k + best]!) best = j;
    return best;
  });

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths differ');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const shuffle = { breast: undefined as undefined | { model: ImageClassifier; meta: ExpertMeta; bytes: Uint8Array } };
before(() => {
  const { model, meta } = calibrated('shufflenet_v2_x1_0', 'breastmnist', 2, 1);
  shuffle.breast = { model, meta, bytes: expertToOnnx(model, meta) };
});
after(() => shuffle.breast?.model.dispose());

/** Parity of ONNX Runtime and lorkd on a bundled test split; returns the number of images. */
async function assertParity(model: ImageClassifier, meta: ExpertMeta, bytes: Uint8Array, task: string, limit?: number): Promise<number> {
  const { x, n, lorkdLogits } = tidy(() => {
    const s = testSplit(task, meta, limit);
    const l = noGrad(() => model.forward(s.x)).toArray() as Float32Array;
    return { x: s.x, n: s.n, lorkdLogits: l };
  });
  try {
    const { logits } = await runOnnx(bytes, x);
    const k = meta.classNames.length;
    assert.equal(logits.length, n * k);
    const d = maxAbsDiff(logits, lorkdLogits);
    assert.ok(d < 1e-4, `${task}: ONNX logits differ from lorkd's by ${d}`);
    assert.deepEqual(argmaxRows(logits, k), argmaxRows(lorkdLogits, k), `${task}: predictions differ`);
    // The network is not constant: the predictions or at least the logits vary over the split.
    const spread = Math.max(...lorkdLogits.filter((_, i) => i % k === 0)) - Math.min(...lorkdLogits.filter((_, i) => i % k === 0));
    assert.ok(spread > 1e-2, `${task}: logits hardly vary (${spread}); the test would not see a wrong graph`);
    return n;
  } finally {
    x.dispose();
  }
}

test('ShuffleNetV2 x1_0 expert: ONNX Runtime matches lorkd on the bundled breastmnist test split (logits 1e-4, same predictions)', async () => {
  const b = shuffle.breast!;
  assert.equal(await assertParity(b.model, b.meta, b.bytes, 'breastmnist'), 156);
});

test('ShuffleNetV2 x1_0 on retinamnist (RGB, 5 classes, 400 test images) and ResNet-18 (residual adds, downsample)', async () => {
  const retina = calibrated('shufflenet_v2_x1_0', 'retinamnist', 5, 2);
  try {
    assert.equal(await assertParity(retina.model, retina.meta, expertToOnnx(retina.model, retina.meta), 'retinamnist'), 400);
  } finally {
    retina.model.dispose();
  }
  const r18 = calibrated('resnet18', 'pneumoniamnist', 2, 3);
  try {
    assert.equal(await assertParity(r18.model, r18.meta, expertToOnnx(r18.model, r18.meta), 'pneumoniamnist', 128), 128);
  } finally {
    r18.model.dispose();
  }
});

test('cam output (3 x 3 at input 96): ReLU(sum_k w_ck A_k) of the argmax class on lorkd\'s last feature map, and Grad-CAM * h * w', async () => {
  const b = calibrated('shufflenet_v2_x1_0', 'retinamnist', 5, 5, 96);
  const n = 24;
  const K0 = 5;
  const ref = tidy(() => {
    const { x } = testSplit('retinamnist', b.meta, n);
    // lorkd's own feature map: the children of the model up to conv5, run directly.
    const a = noGrad(() => featureModules(b.model).reduce((y, [, m]) => m.forward(y), x));
    const logits = noGrad(() => b.model.forwardHead(a.mean([2, 3])));
    // Grad-CAM: alpha_ck = mean over h, w of d logit_c / d A_k (autograd), map ReLU(sum_k alpha_ck A_k).
    const leaf = a.detach().requiresGrad_(true);
    const cls = argmaxRows(logits.toArray() as Float32Array, K0);
    const out = b.model.forwardHead(leaf.mean([2, 3]));
    const mask = new Float32Array(n * K0);
    cls.forEach((c, i) => (mask[i * K0 + c] = 1));
    out.mul(tensor(mask, [n, K0])).sum().backward();
    return { x: keep(x), a: a.toArray() as Float32Array, shape: a.shape, cls, grad: leaf.grad!.toArray() as Float32Array };
  });
  try {
    const [, K, h, w] = ref.shape as [number, number, number, number];
    const W = b.model.fc.weight.toArray() as Float32Array;
    const got = await runOnnx(expertToOnnx(b.model, b.meta), ref.x);
    assert.deepEqual(got.camDims, [n, h, w]);
    assert.deepEqual(argmaxRows(got.logits, K0), ref.cls);
    const cam = new Float64Array(n * h * w);
    const gradCam = new Float64Array(n * h * w);
    for (let i = 0; i < n; i++) {
      const c = ref.cls[i]!;
      for (let p = 0; p < h * w; p++) {
        let s = 0;
        let g = 0;
        for (let k = 0; k < K; k++) {
          const akp = ref.a[(i * K + k) * h * w + p]!;
          s += W[c * K + k]! * akp;
          let alpha = 0;
          for (let q = 0; q < h * w; q++) alpha += ref.grad[(i * K + k) * h * w + q]!;
          g += (alpha / (h * w)) * akp;
        }
        cam[i * h * w + p] = Math.max(0, s);
        gradCam[i * h * w + p] = Math.max(0, g) * h * w;
      }
    }
    const scale = Math.max(...cam);
    assert.ok(scale > 0.1, `the CAMs are all near zero (${scale}); the test would not see a wrong map`);
    const varying = Array.from({ length: n }, (_, i) => cam.slice(i * h * w, (i + 1) * h * w)).filter((m) => Math.max(...m) - Math.min(...m) > 1e-3 * scale);
    assert.ok(varying.length >= n / 2, `only ${varying.length} of ${n} maps vary over the image`);
    const d = maxAbsDiff(got.cam, cam);
    assert.ok(d < 1e-4 * Math.max(1, scale), `cam differs from the direct computation by ${d}`);
    assert.ok(maxAbsDiff(cam, gradCam) < 1e-4 * Math.max(1, scale), 'CAM and Grad-CAM * h * w differ');
    assert.equal(h * w, 9);
  } finally {
    ref.x.dispose();
    b.model.dispose();
  }
});

test('dynamic batch: batches of 1 and 5 give the rows of one batch of 6', async () => {
  const b = shuffle.breast!;
  const session = await ort.InferenceSession.create(b.bytes);
  const { x } = tidy(() => ({ x: keep(testSplit('breastmnist', b.meta, 6).x) }));
  try {
    const all = x.toArray() as Float32Array;
    const per = 3 * S * S;
    const one = async (from: number, m: number) =>
      (await session.run({ input: new ort.Tensor('float32', all.slice(from * per, (from + m) * per), [m, 3, S, S]) })).logits!.data as Float32Array;
    const whole = await one(0, 6);
    const parts = [...(await one(0, 1)), ...(await one(1, 5))];
    assert.ok(maxAbsDiff(whole, parts) < 1e-5);
  } finally {
    x.dispose();
    await session.release();
  }
});

test('the file: opset 13, input/outputs with a dynamic batch "N", BatchNorm folded, metadata_props with the preprocessing record', () => {
  const b = shuffle.breast!;
  const m = decodeModel(b.bytes) as {
    ir_version: number; opset_import: { domain?: string; version: number }[];
    graph: { node: { op_type: string }[]; input: Vi[]; output: Vi[] };
    metadata_props: { key: string; value: string }[];
  };
  type Vi = { name: string; type: { tensor_type: { elem_type: number; shape: { dim: { dim_param?: string; dim_value?: number }[] } } } };
  assert.equal(m.opset_import[0]!.version, ONNX_OPSET);
  assert.ok(ONNX_OPSET >= 13);
  const dims = (v: Vi) => v.type.tensor_type.shape.dim.map((d) => d.dim_param ?? d.dim_value);
  assert.deepEqual(m.graph.input.map((v) => [v.name, dims(v)]), [['input', ['N', 3, S, S]]]);
  // 32 -> conv1 16 -> maxpool 8 -> stages 4, 2, 1: the cam is 1 x 1 at this input size.
  assert.deepEqual(m.graph.output.map((v) => [v.name, dims(v)]), [['logits', ['N', 2]], ['cam', ['N', 1, 1]]]);
  const ops = new Map<string, number>();
  for (const nd of m.graph.node) ops.set(nd.op_type, (ops.get(nd.op_type) ?? 0) + 1);
  assert.equal(ops.get('BatchNormalization'), undefined, 'BatchNorm must be folded');
  assert.equal(ops.get('Conv'), b.model.modules().filter((x) => x.constructor.name === 'Conv2d').length);
  assert.equal(ops.get('Transpose'), 16, 'one channel shuffle per unit');
  const md = Object.fromEntries(m.metadata_props.map((p) => [p.key, p.value]));
  assert.deepEqual(JSON.parse(md.lorkd_preprocessing!), {
    input_size: S, resize: 'bilinear', mean: b.meta.mean, std: b.meta.std, channels: 3, class_names: b.meta.classNames,
  });
  assert.equal(md.lorkd_task, 'breastmnist');
  assert.equal(md.lorkd_model, 'shufflenet_v2_x1_0');
  assert.equal(md.lorkd_version, JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')).version);
});

test('schema.ts is the vendored onnx.proto, parsed by protobufjs', () => {
  const proto = readFileSync(path.join(REPO, 'src', 'export', 'onnx', 'onnx.proto'), 'utf8');
  assert.match(proto, /SPDX-License-Identifier: Apache-2.0/);
  assert.deepEqual(JSON.parse(JSON.stringify(protobuf.parse(proto, { keepCase: true }).root.toJSON())), ONNX_SCHEMA);
  assert.ok(existsSync(path.join(REPO, 'src', 'export', 'onnx', 'NOTICE')));
});

test('lorkd export --model X.safetensors --format onnx, and --run DIR --all --format onnx: logits of lorkd\'s fused experts', async () => {
  const b = shuffle.breast!;
  const expert = path.join(dir, 'breast.safetensors');
  saveExpertFile(expert, b.model, b.meta);
  const out = path.join(dir, 'breast.onnx');
  const r = lastJson<{ files: string[]; format: string }>(lorkdOk(['export', '--model', expert, '--format', 'onnx', '--out', out, '--json']).stdout);
  assert.deepEqual(r, { format: 'onnx', files: [out] });
  assert.deepEqual(readFileSync(out), Buffer.from(b.bytes), 'the CLI writes the bytes of expertToOnnx');

  // A decomposition (2 tasks, random experts) in a run directory: every task's ONNX file gives the
  // logits of that task's safetensors expert from the same run.
  manualSeed(4);
  const dm = new DecompositionModel({ tasks: [{ name: 'a', classNames: ['x', 'y'] }, { name: 'b', classNames: ['p', 'q', 'r'] }], rank: 2 });
  const runDir = path.join(dir, 'run');
  // Non-zero experts (B starts at zero), so each task's fused network differs from the base.
  tidy(() => noGrad(() => {
    for (const [, c] of dm.expertConvs()) c.getModule('expertB').parameters().forEach((b) => b.copy_(randnLike(b).mul(0.05)));
  }));
  mkdirSync(runDir);
  saveDecomposition(path.join(runDir, 'decomposition.safetensors'), dm, { input_size: String(S), mean: '[0.5,0.5,0.5]', std: '[0.5,0.5,0.5]' });
  try {
    const onnxFiles = lastJson<{ files: string[] }>(lorkdOk(['export', '--run', runDir, '--all', '--format', 'onnx', '--out', path.join(dir, 'onnx'), '--json']).stdout).files;
    assert.deepEqual(onnxFiles.map((f) => path.basename(f)), ['a.onnx', 'b.onnx']);
    const single = path.join(dir, 'single', 'b.onnx');
    lorkdOk(['export', '--decomposition', path.join(runDir, 'decomposition.safetensors'), '--task', 'b', '--format', 'onnx', '--out', single]);
    assert.deepEqual(readFileSync(single), readFileSync(onnxFiles[1]!), '--task b writes the bytes of --all\'s b.onnx');
    const meta = { ...metaFor('shufflenet_v2_x1_0', 't', 2), mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
    const x = tidy(() => keep(testSplit('breastmnist', meta, 20).x));
    try {
      const logits: Float32Array[] = [];
      for (const [t, f] of onnxFiles.entries()) {
        const want = tidy(() => {
          const e = expertModel(dm, t);
          try {
            return noGrad(() => e.eval().forward(x)).toArray() as Float32Array;
          } finally {
            e.dispose();
          }
        });
        logits.push((await runOnnx(readFileSync(f), x)).logits);
        assert.ok(maxAbsDiff(logits[t]!, want) < 1e-4, `${f}: logits differ from lorkd's fused expert`);
        const md = Object.fromEntries((decodeModel(readFileSync(f)) as { metadata_props: { key: string; value: string }[] }).metadata_props.map((p) => [p.key, p.value]));
        assert.deepEqual(JSON.parse(md.lorkd_preprocessing!).class_names, t === 0 ? ['x', 'y'] : ['p', 'q', 'r']);
        assert.equal(md.lorkd_task, t === 0 ? 'a' : 'b');
      }
    } finally {
      x.dispose();
    }
  } finally {
    dm.dispose();
  }
});

test('lorkd export: one-line errors for a missing expert file, --model without --format onnx', () => {
  const cases: [string[], RegExp][] = [
    [['export', '--model', path.join(dir, 'nope.safetensors'), '--format', 'onnx', '--out', path.join(dir, 'x.onnx')], /expert file not found/],
    [['export', '--model', path.join(dir, 'nope.safetensors'), '--out', path.join(dir, 'x.onnx')], /needs --format onnx/],
  ];
  for (const [args, re] of cases) {
    const r = lorkd(args);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
});

const hasOnnx = spawnSync(PYTHON, ['-c', 'import onnx'], { stdio: 'ignore' }).status === 0;
test('python3-onnx checker accepts the file (full check, with shape inference)', { skip: hasOnnx ? false : `${PYTHON} cannot import onnx` }, () => {
  const file = path.join(dir, 'checked.onnx');
  const b = shuffle.breast!;
  writeFileSync(file, b.bytes);
  const r = spawnSync(PYTHON, ['-c', 'import onnx,sys; m=onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); print(m.opset_import[0].version, len(m.graph.node))', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^13 \d+/);
});

test('predict with the .onnx file (onnxruntime-node) gives the probabilities of predict with the .safetensors expert', async () => {
  const b = shuffle.breast!;
  const expert = path.join(dir, 'breast-predict.safetensors');
  const onnx = path.join(dir, 'breast-predict.onnx');
  saveExpertFile(expert, b.model, b.meta);
  writeFileSync(onnx, b.bytes);
  const folder = path.join(dir, 'images');
  mkdirSync(folder, { recursive: true });
  writeFileSync(path.join(folder, 'mr.dcm'), readFileSync(path.join(REPO, 'test', 'fixtures', 'dicom', 'MR_small.dcm')));
  writeFileSync(path.join(folder, 'bad.dcm'), new Uint8Array(10));
  const inputs = [bundled('breastmnist'), folder];
  const opts = { limit: 40, batchSize: 16 };
  const live = memory().liveTensors;
  const want = predictInputs(expert, inputs, opts);
  const got = await predictInputsOnnx(onnx, inputs, opts);
  assert.equal(memory().liveTensors, live, 'no tensors left alive');
  assert.equal(got.predictions.length, 40);
  assert.deepEqual(got.predictions.map((p) => [p.input, p.index, p.class, p.label]), want.predictions.map((p) => [p.input, p.index, p.class, p.label]));
  let worst = 0;
  got.predictions.forEach((p, i) => b.meta.classNames.forEach((c) => (worst = Math.max(worst, Math.abs(p.probs[c]! - want.predictions[i]!.probs[c]!)))));
  // predict runs the folded inference path (BatchNorm inside the conv weights, rounded once in
  // float32), the ONNX graph the exported layers: the same function in another order of operations.
  assert.ok(worst < 5e-5, `probabilities differ by ${worst}`);
  // The limit (40) is reached inside the npz: the folder is not read.
  assert.deepEqual(got.failures, []);
  const all = await predictInputsOnnx(onnx, [folder], {});
  assert.deepEqual(all.predictions.map((p) => path.basename(p.input)), ['mr.dcm']);
  assert.deepEqual(all.failures.map((f) => path.basename(f.input)), ['bad.dcm']);
  await assert.rejects(predictInputsOnnx(path.join(dir, 'none.onnx'), [folder]), /none\.onnx: ONNX file not found/);
  writeFileSync(path.join(dir, 'plain.onnx'), new Uint8Array([8, 7]));
  await assert.rejects(predictInputsOnnx(path.join(dir, 'plain.onnx'), [folder]), (e: Error) => e instanceof UserError && /plain\.onnx: not a lorkd ONNX expert/.test(e.message));
});

test('a method run\'s deployed/ (KF pair: CKN x1.0 + TSN x0.5, one classifier; a plain expert): lorkd export --run --all --format onnx matches lorkd, CAM over both maps', async () => {
  manualSeed(6);
  const size = 64;
  const kf = new KfExpert('shufflenet_v2_x1_0', 'shufflenet_v2_x0_5', 3, 3);
  const meta = { ...metaFor('kf', 'retinamnist', 3, size), cknModel: 'shufflenet_v2_x1_0', tsnModel: 'shufflenet_v2_x0_5' };
  try {
    for (const m of kf.modules()) if (m instanceof BatchNorm2d) m.momentum = 1;
    const x = tidy(() => keep(testSplit('retinamnist', meta, 32).x));
    try {
      noGrad(() => tidy(() => kf.train().forward(x)));
      kf.eval();
      // A method run's layout: deployed/<task>.safetensors (a KF pair and a plain expert here).
      const run = path.join(dir, 'kf-run');
      mkdirSync(path.join(run, 'deployed'), { recursive: true });
      saveKfExpert(path.join(run, 'deployed', 'retina.safetensors'), kf, meta);
      saveExpertFile(path.join(run, 'deployed', 'breast.safetensors'), shuffle.breast!.model, shuffle.breast!.meta);
      const files = lastJson<{ files: string[] }>(lorkdOk(['export', '--run', run, '--all', '--format', 'onnx', '--out', path.join(run, 'onnx'), '--json']).stdout).files;
      assert.deepEqual(files.map((f) => path.basename(f)), ['breast.onnx', 'retina.onnx']);
      assert.deepEqual(readFileSync(files[0]!), Buffer.from(shuffle.breast!.bytes));
      const out = files[1]!;
      const { logits, want, cam } = tidy(() => {
        const a1 = noGrad(() => featureModules(kf.ckn.backbone).reduce((y, [, m]) => m.forward(y), x));
        const a2 = noGrad(() => featureModules(kf.tsn.backbone).reduce((y, [, m]) => m.forward(y), x));
        const a = cat([a1, a2], 1);
        const l = noGrad(() => kf.forward(x));
        // CAM of the argmax class over the concatenated maps, by einsum on lorkd tensors.
        const cls = l.max(1).indices;
        const w = kf.fc.weight.indexSelect(0, cls);
        const c = noGrad(() => einsum('nk,nkhw->nhw', w, a).relu());
        return { logits: l.toArray() as Float32Array, want: cls.toNumbers(), cam: c.toArray() as Float32Array };
      });
      const got = await runOnnx(readFileSync(out), x);
      assert.ok(maxAbsDiff(got.logits, logits) < 1e-4, 'KF logits differ');
      assert.deepEqual(argmaxRows(got.logits, 3), want);
      assert.deepEqual(got.camDims, [32, 2, 2]);
      assert.ok(maxAbsDiff(got.cam, cam) < 1e-4 * Math.max(1, ...cam), 'KF cam differs');
      const md = Object.fromEntries((decodeModel(readFileSync(out)) as { metadata_props: { key: string; value: string }[] }).metadata_props.map((p) => [p.key, p.value]));
      assert.equal(md.lorkd_model, 'kf:shufflenet_v2_x1_0+shufflenet_v2_x0_5');
    } finally {
      x.dispose();
    }
  } finally {
    kf.dispose();
  }
});
