// `lorkd export --format bundle`: a method run's network as a MONAI bundle folder. metadata.json
// has every key the MONAI Bundle Specification requires (the list below is the specification's,
// written here independently of src/), channel_def maps the logits to the task's class names;
// models/model.onnx, run in onnxruntime-node with the preprocessing metadata.json states,
// reproduces `lorkd predict` with the bundle's safetensors; the model card's front matter carries
// the license, the base model's sha256, the datasets and the test metrics; a compare folder's
// card gives intervals; refusals are one line.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { writeTaskNpz, lorkd, lastJson, REPO } from './helpers/pipeline.js';
import { manualSeed, setNumThreads } from '../src/tensor/index.js';
import { createModel } from '../src/models/index.js';
import { saveFoundation } from '../src/experiments/foundation-file.js';
import { runMethod, type MethodResult } from '../src/experiments/run-method.js';
import { createProgress } from '../src/experiments/progress.js';
import { estimate } from '../src/experiments/stats.js';
import { loadMedMnist } from '../src/data/medmnist.js';
import { imagesToTensor } from '../src/data/transforms.js';

setNumThreads(1);
const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-bundle-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const BREAST = path.join(REPO, 'data', 'medmnist', 'breastmnist.npz');
const C3 = path.join(dir, 'c3.npz');
writeTaskNpz(C3, { classes: 3, sizes: { train: 24, val: 6, test: 6 }, seed: 4 });
const RUN = path.join(dir, 'run');
const FOUNDATION = path.join(dir, 'foundation.safetensors');

/** The MONAI Bundle Specification's mandatory metadata.json keys and tensor format keys (docs.monai.io, mb_specification). */
const SPEC_KEYS = ['version', 'monai_version', 'pytorch_version', 'numpy_version', 'optional_packages_version', 'task', 'description', 'authors', 'copyright', 'network_data_format'];
const SPEC_TENSOR_KEYS = ['type', 'format', 'modality', 'num_channels', 'spatial_shape', 'dtype', 'value_range', 'is_patch_data', 'channel_def'];

let result: MethodResult;
async function trainedRun(): Promise<MethodResult> {
  if (result) return result;
  manualSeed(0);
  const f = createModel('resnet18', { numClasses: 5 });
  saveFoundation(FOUNDATION, f, { model: 'resnet18', tasks: [{ name: 'breastmnist', classNames: ['a', 'b'] }, { name: 'c3', classNames: ['x', 'y', 'z'] }], input: 16, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  f.dispose();
  result = await runMethod({
    tasks: [BREAST, C3], input: 16, batch: 64, seed: 0, method: 'lorkd', out: RUN, model: 'shufflenet_v2_x0_5', foundation: FOUNDATION, kd: 'feature', alpha: 4, beta: 1, rank: 2, strategy: 'fused',
    mean: [0.4, 0.5, 0.6], std: [0.3, 0.25, 0.2], epochs: 1, lr: 0.01, momentum: 0.9, weightDecay: 1e-4, resume: false, progress: createProgress({ quiet: true }),
  });
  return result;
}

test('a method run as a MONAI bundle: the specification\'s keys, channel_def, model card, LICENSE; model.onnx with the stated preprocessing reproduces lorkd predict', { timeout: 240_000 }, async () => {
  const r = await trainedRun();
  assert.equal(r.teacher?.sha256, createHash('sha256').update(readFileSync(FOUNDATION)).digest('hex'), 'result.json records the teacher');
  const out = path.join(dir, 'bundle');
  const e = lorkd(['export', '--format', 'bundle', '--run', RUN, '--task', 'breastmnist', '--out', out, '--json']);
  assert.equal(e.status, 0, e.stderr);
  const files = (lastJson(e.stdout) as { files: string[] }).files;
  for (const f of ['configs/metadata.json', 'configs/inference.json', 'models/model.onnx', 'models/model.safetensors', 'docs/README.md', 'LICENSE']) {
    assert.ok(files.includes(path.join(out, f)) && existsSync(path.join(out, f)), f);
  }
  const md = JSON.parse(readFileSync(path.join(out, 'configs/metadata.json'), 'utf8'));
  for (const k of SPEC_KEYS) assert.ok(k in md && md[k] !== '' && md[k] !== null, `metadata.json lacks ${k}`);
  assert.equal(typeof md.optional_packages_version, 'object');
  const ndf = md.network_data_format;
  assert.deepEqual(Object.keys(ndf).sort(), ['inputs', 'outputs']);
  for (const spec of [...Object.values(ndf.inputs), ...Object.values(ndf.outputs)] as Record<string, unknown>[]) {
    for (const k of SPEC_TENSOR_KEYS) assert.ok(k in spec, `tensor format lacks ${k}`);
  }
  const classes = loadMedMnist(BREAST).classNames;
  assert.deepEqual(ndf.outputs.logits.channel_def, Object.fromEntries(classes.map((c, i) => [String(i), c])));
  assert.equal(ndf.outputs.logits.num_channels, 2);
  const input = ndf.inputs.input;
  assert.deepEqual(input.spatial_shape, [16, 16]);
  assert.equal(input.modality, 'US', 'breast ultrasound');
  // value_range: (0 - mean) / std .. (1 - mean) / std over the channels.
  assert.ok(Math.abs(input.value_range[0] - (0 - 0.6) / 0.2) < 1e-9 && Math.abs(input.value_range[1] - (1 - 0.4) / 0.3) < 1e-9, JSON.stringify(input.value_range));

  // models/model.onnx in onnxruntime-node, fed as metadata.json says, against lorkd predict on the safetensors.
  const pre = md.preprocessing as { input_size: number; mean: number[]; std: number[] };
  const test = loadMedMnist(BREAST).splits.test;
  const n = 6;
  const x = imagesToTensor(test.images.subarray(0, n * 3 * 28 * 28), n, 28, 28, { size: pre.input_size, mean: pre.mean as [number, number, number], std: pre.std as [number, number, number] });
  const session = await ort.InferenceSession.create(path.join(out, 'models/model.onnx'));
  const logits = (await session.run({ input: new ort.Tensor('float32', x.toArray() as Float32Array, x.shape) })).logits!.data as Float32Array;
  await session.release();
  x.dispose();
  const p = lorkd(['predict', '--model', path.join(out, 'models/model.safetensors'), '--input', BREAST, '--limit', String(n), '--json', '--quiet']);
  assert.equal(p.status, 0, p.stderr);
  const preds = (lastJson(p.stdout) as { predictions: { probs: Record<string, number> }[] }).predictions;
  assert.equal(preds.length, n);
  for (let i = 0; i < n; i++) {
    const l = [logits[2 * i]!, logits[2 * i + 1]!];
    const m = Math.max(...l);
    const z = l.map((v) => Math.exp(v - m));
    const s = z[0]! + z[1]!;
    for (let k = 0; k < 2; k++) assert.ok(Math.abs(z[k]! / s - preds[i]!.probs[classes[k]!]!) < 1e-4, `image ${i} class ${k}`);
  }

  // The model card and LICENSE.
  const card = readFileSync(path.join(out, 'docs/README.md'), 'utf8');
  const front = card.split('\n---\n')[0]!;
  assert.ok(card.startsWith('---\n'));
  assert.match(front, /^license: "other"$/m, 'breastmnist is CC BY 4.0, c3 unknown: no single license');
  assert.match(front, new RegExp(`^base_model: "resnet18 foundation, sha256:${r.teacher!.sha256}"$`, 'm'));
  assert.match(front, /^datasets: \["medmnist\/breastmnist", "c3"\]$/m);
  const acc = r.deployed[0]!.accuracy;
  assert.match(front, new RegExp(`type: "accuracy", value: ${Number(acc.toFixed(4))} `));
  assert.match(card, new RegExp(`\\| accuracy % \\| ${(100 * acc).toFixed(1)} \\|`));
  assert.match(card, /## Intended use[\s\S]*not for diagnosis/);
  assert.match(card, /## Limits/);
  assert.match(card, /M parameters; [\d.]+ M multiply-accumulates per image at 16x16/);
  const license = readFileSync(path.join(out, 'LICENSE'), 'utf8');
  assert.match(license, /breastmnist \(medmnist\/breastmnist\): CC BY 4\.0/);
  assert.match(license, /c3 \(c3\): unknown/);
  const inference = JSON.parse(readFileSync(path.join(out, 'configs/inference.json'), 'utf8'));
  const norm = inference.preprocessing.transforms.find((t: { _target_: string }) => t._target_ === 'NormalizeIntensityd');
  assert.deepEqual([norm.subtrahend, norm.divisor], [pre.mean, pre.std]);
});

test('a compare folder\'s bundle: metrics as mean and 95% t interval over seeds', { timeout: 240_000 }, async () => {
  const r = await trainedRun();
  const cmp = path.join(dir, 'cmp');
  mkdirSync(cmp);
  cpSync(RUN, path.join(cmp, 'runs', 'lorkd-s0'), { recursive: true });
  // Two seeds' accuracies (the second seed's run is not needed to write the bundle: it holds seed 0's network).
  const acc = estimate([r.deployed[0]!.accuracy, 0.5]);
  const auc = estimate([r.deployed[0]!.auc, 0.6]);
  writeFileSync(path.join(cmp, 'compare.json'), JSON.stringify({ tasks: r.tasks, seeds: [0, 1], budget: {}, wall_seconds: 0, run_seconds: 0, methods: { lorkd: { method: 'lorkd', runs: [path.join(cmp, 'runs', 'lorkd-s0')], per_task: { breastmnist: { accuracy: acc, auc } } } } }));
  const out = path.join(dir, 'bundle-cmp');
  const e = lorkd(['export', '--format', 'bundle', '--run', cmp, '--task', 'breastmnist', '--out', out]);
  assert.equal(e.status, 0, e.stderr);
  const card = readFileSync(path.join(out, 'docs/README.md'), 'utf8');
  const pct = (x: number) => (100 * x).toFixed(1);
  assert.match(card, new RegExp(`\\| accuracy % \\| ${pct(acc.mean)} \\[${pct(acc.ci95![0])}, ${pct(acc.ci95![1])}\\] \\|`));
  assert.match(card, /mean over seeds 0, 1 with 95% t intervals; this bundle's network is seed 0's/);
  const e2 = lorkd(['export', '--format', 'bundle', '--run', cmp, '--task', 'breastmnist', '--method', 'mtl', '--out', path.join(dir, 'bundle-mtl')]);
  assert.equal(e2.status, 2);
  assert.match(e2.stderr.trim(), /^lorkd: \S+compare\.json has no method "mtl" \(methods: lorkd\)$/);
});

test('bundle refusals, one line each', { timeout: 120_000 }, async () => {
  await trainedRun();
  const one = (args: string[], re: RegExp) => {
    const e = lorkd(['export', '--format', 'bundle', ...args]);
    assert.equal(e.status, 2, e.stderr);
    assert.match(e.stderr.trim(), re);
    if (!args.includes(path.join(dir, 'bundle'))) assert.equal(existsSync(args[args.indexOf('--out') + 1]!), false, 'nothing left behind');
  };
  one(['--run', RUN, '--out', path.join(dir, 'b1')], /^lorkd: export --format bundle needs --run DIR and --task NAME/);
  one(['--run', RUN, '--task', 'nope', '--out', path.join(dir, 'b2')], /^lorkd: \S+ has no task "nope" \(tasks: breastmnist, c3\)$/);
  one(['--run', path.join(dir, 'bundle'), '--task', 'breastmnist', '--out', path.join(dir, 'b3')], /not a lorkd run directory$/);
  one(['--run', RUN, '--task', 'c3', '--out', path.join(dir, 'bundle')], /exists and is not empty/);
  const m = lorkd(['export', '--run', RUN, '--task', 'c3', '--method', 'lorkd', '--out', path.join(dir, 'b4.safetensors')]);
  assert.match(m.stderr.trim(), /^lorkd: --method applies to --format bundle$/);
});
