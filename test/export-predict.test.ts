// predict with an expert file: probabilities sum to 1 and equal a direct forward pass on the same
// preprocessed tensor (and PyTorch's, from the raw bytes); .npz splits and limits; PNG inputs of
// any size; batching; folders with PNG and DICOM files and bad files that are reported and
// skipped; the `lorkd predict` command (table, JSON, accuracy, one-line errors, exit status).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { zipSync } from 'fflate';
import { PNG } from 'pngjs';
import { type Tensor, interpolate, manualSeed, memory, noGrad, rand, softmax, tensor, tidy, UserError } from '../src/tensor/index.js';
import { createModel, type ImageClassifier } from '../src/models/index.js';
import { BatchNorm2d } from '../src/nn/index.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { type ExpertMeta, saveExpertFile } from '../src/export/expert-file.js';
import { type Prediction, predict, predictInputs } from '../src/export/predict.js';
import { decodeDicom } from '../src/data/dicom.js';
import { packTasks } from '../src/data/pack-tasks.js';
import { loadTasks } from '../src/data/medmnist.js';
import { lcg } from './helpers/random.js';
import { runPython, skipWithoutTorch } from './helpers/python.js';
import { npy } from './helpers/pipeline.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-predict-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const META: ExpertMeta = {
  model: 'shufflenet_v2_x0_5',
  task: 'toy',
  classNames: ['normal', 'benign', 'malignant'],
  inputSize: 32,
  channels: 3,
  resize: 'bilinear',
  mean: [0.45, 0.5, 0.55],
  std: [0.2, 0.25, 0.3],
};
const expertFile = path.join(dir, 'toy.safetensors');
const npzFile = path.join(dir, 'toy.npz');
const SIZES = { train: 2, val: 4, test: 7 };
const H = 28;
/** Per split: grey images (n, 28, 28) and labels. */
const data: Record<string, { images: Uint8Array; labels: number[] }> = {};


/** A MedMNIST-layout npz with grey 28x28 images and (n, 1) int64 labels. */
function writeNpz(file: string, labelOf: (i: number) => number): void {
  const r = lcg(21);
  const members: Record<string, Uint8Array> = {};
  for (const [s, n] of Object.entries(SIZES)) {
    const images = Uint8Array.from({ length: n * H * H }, () => Math.floor(r() * 256));
    const labels = Array.from({ length: n }, (_, i) => labelOf(i));
    data[s] = { images, labels };
    members[`${s}_images.npy`] = npy('|u1', [n, H, H], images);
    const l = BigInt64Array.from(labels, BigInt);
    members[`${s}_labels.npy`] = npy('<i8', [n, 1], new Uint8Array(l.buffer));
  }
  writeFileSync(file, zipSync(members));
}

function pngFile(file: string, w: number, h: number, seed: number): Uint8Array {
  const rgb = Uint8Array.from({ length: w * h * 3 }, ((r) => () => Math.floor(r() * 256))(lcg(seed)));
  writeFileSync(file, PNG.sync.write({ width: w, height: h, data: Buffer.from(rgb) } as PNG, { colorType: 2, inputColorType: 2, inputHasAlpha: false }));
  const hw = w * h;
  const out = new Uint8Array(3 * hw);
  for (let p = 0; p < hw; p++) for (let c = 0; c < 3; c++) out[c * hw + p] = rgb[p * 3 + c]!;
  return out;
}

before(() => {
  manualSeed(0);
  const m = createModel('shufflenet_v2_x0_5', { numClasses: 3 });
  // At initialisation the logits hardly depend on the image (activations shrink layer by layer).
  // Calibrate the BatchNorm statistics on one random batch (momentum 1), so the probabilities
  // differ between images and the preprocessing and eval mode matter (checked below).
  for (const mod of m.modules()) if (mod instanceof BatchNorm2d) mod.momentum = 1;
  noGrad(() => tidy(() => m.train().forward(rand([16, 3, 32, 32]).sub(0.5).div(0.25))));
  m.eval();
  saveExpertFile(expertFile, m, META);
  m.dispose();
  writeNpz(npzFile, (i) => i % 3);
});

/** Softmax of the expert's forward on (n, 3, h, w) uint8 images, preprocessed by hand here. */
function directProbs(images: Uint8Array, n: number, h: number, w: number): number[][] {
  const model = loadModel();
  try {
    return tidy(() => {
      let x: Tensor = tensor(Float32Array.from(images, (v) => v / 255), [n, 3, h, w]);
      if (h !== META.inputSize || w !== META.inputSize) x = interpolate(x, [META.inputSize, META.inputSize], 'bilinear', false);
      x = x.sub(tensor(Float32Array.from(META.mean), [1, 3, 1, 1])).div(tensor(Float32Array.from(META.std), [1, 3, 1, 1]));
      const p = noGrad(() => softmax(model.forward(x), 1)).toNumbers();
      return Array.from({ length: n }, (_, i) => p.slice(i * 3, i * 3 + 3));
    });
  } finally {
    model.dispose();
  }
}

/** The expert's model rebuilt from the raw safetensors (not through loadExpertFile), in eval mode. */
function loadModel(): ImageClassifier {
  const m = createModel(META.model, { numClasses: 3 });
  tidy(() => m.loadStateDict(loadSafetensors(expertFile).tensors));
  return m.eval();
}

/** Grey (n, h, w) -> (n, 3, h, w) by repetition. */
function grey3(images: Uint8Array, n: number, hw: number): Uint8Array {
  const out = new Uint8Array(n * 3 * hw);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out.set(images.subarray(i * hw, (i + 1) * hw), (i * 3 + c) * hw);
  return out;
}

function checkRows(rows: Prediction[], want: number[][], what: string): void {
  assert.equal(rows.length, want.length, what);
  rows.forEach((r, i) => {
    const p = META.classNames.map((c) => r.probs[c]!);
    assert.deepEqual(Object.keys(r.probs), META.classNames);
    assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-5, `${what} row ${i}: probabilities sum to ${p.reduce((a, b) => a + b, 0)}`);
    for (let k = 0; k < 3; k++) assert.ok(Math.abs(p[k]! - want[i]![k]!) < 1e-5, `${what} row ${i} class ${k}: ${p[k]} vs direct ${want[i]![k]}`);
    const best = want[i]!.indexOf(Math.max(...want[i]!));
    assert.equal(r.class, META.classNames[best], `${what} row ${i}`);
  });
}

test('npz: one prediction per test image, equal to a direct forward on the same preprocessed tensor', () => {
  const live = memory().liveTensors;
  const rows = predict(expertFile, [npzFile]);
  assert.equal(memory().liveTensors, live, 'no tensors left alive');
  const t = data.test!;
  checkRows(rows, directProbs(grey3(t.images, 7, H * H), 7, H, H), 'test');
  rows.forEach((r, i) => {
    assert.equal(r.input, npzFile);
    assert.equal(r.index, i);
    assert.equal(r.label, META.classNames[t.labels[i]!]);
  });
  // The model depends on its input: the probabilities differ between images, and are not saturated.
  const p0 = rows.map((r) => r.probs.normal!);
  assert.ok(Math.max(...p0) - Math.min(...p0) > 0.05, `probabilities barely vary: ${p0.join(', ')}`);
  assert.ok(rows.every((r) => Math.max(...Object.values(r.probs)) < 0.99), 'probabilities are saturated: ' + JSON.stringify(rows.map((r) => Object.values(r.probs).map((v) => v.toFixed(3)))));
});

test("a pack of the npz (pack:DIR or the folder): the expert's task streamed, the npz's predictions and labels; --limit counts its rows", async () => {
  const pack = path.join(dir, 'toy.pack');
  await packTasks(pack, loadTasks([npzFile]), { storage: 'raw' });
  const ref = predict(expertFile, [npzFile]);
  for (const input of [`pack:${pack}`, pack]) {
    const rows = predict(expertFile, [input]);
    assert.deepEqual(rows.map((r) => [r.index, r.label, r.probs]), ref.map((r) => [r.index, r.label, r.probs]));
    assert.ok(rows.every((r) => r.input === pack));
  }
  assert.equal(predict(expertFile, [pack], { limit: 3, batchSize: 2 }).length, 3);
});

test('npz: --split and --limit; batching does not change the result', () => {
  const rows = predict(expertFile, [npzFile], { split: 'val', limit: 3 });
  const v = data.val!;
  checkRows(rows, directProbs(grey3(v.images, 4, H * H), 4, H, H).slice(0, 3), 'val');
  assert.deepEqual(rows.map((r) => r.index), [0, 1, 2]);
  const small = predict(expertFile, [npzFile], { batchSize: 2 });
  const big = predict(expertFile, [npzFile]);
  small.forEach((r, i) => {
    // oneDNN may pick another kernel for another batch size: float32 rounding, not a bug.
    for (const c of META.classNames) assert.ok(Math.abs(r.probs[c]! - big[i]!.probs[c]!) < 1e-5);
  });
  assert.throws(() => predict(expertFile, [npzFile], { split: 'dev' as 'val' }), (e: unknown) => e instanceof UserError && /split must be one of/.test(e.message));
  assert.throws(() => predict(expertFile, [npzFile], { limit: 0 }), (e: unknown) => e instanceof UserError && /limit must be a positive integer/.test(e.message));
  assert.throws(() => predict(expertFile, []), (e: unknown) => e instanceof UserError && /no inputs/.test(e.message));
});

test('PNG inputs of different sizes, mixed with an npz, in input order', () => {
  const a = path.join(dir, 'a.png');
  const b = path.join(dir, 'b.png');
  const pa = pngFile(a, 20, 24, 1);
  const pb = pngFile(b, 32, 32, 2);
  const rows = predict(expertFile, [a, npzFile, b], { limit: 4 });
  assert.deepEqual(rows.map((r) => [r.input, r.index]), [[a, undefined], [npzFile, 0], [npzFile, 1], [npzFile, 2]]);
  assert.equal(rows[0]!.label, undefined);
  checkRows(rows.slice(0, 1), directProbs(pa, 1, 24, 20), 'a.png');
  const rows2 = predict(expertFile, [b, a]);
  checkRows(rows2, [...directProbs(pb, 1, 32, 32), ...directProbs(pa, 1, 24, 20)], 'b.png, a.png');
  assert.throws(() => predict(expertFile, [path.join(dir, 'none.png')]), (e: unknown) => e instanceof UserError && /none\.png: cannot read image/.test(e.message));
});

test('labels outside the expert\'s classes are refused', () => {
  const wide = path.join(dir, 'wide.npz');
  writeNpz(wide, (i) => i % 5);
  assert.throws(() => predict(expertFile, [wide]), (e: unknown) => e instanceof UserError && /test label 3 \(sample 3\) is out of range for expert "toy" with 3 classes/.test(e.message));
  writeNpz(npzFile, (i) => i % 3); // restore `data` for other tests
});

test('PyTorch computes the same probabilities from the raw npz bytes', { skip: skipWithoutTorch() }, () => {
  const rows = predict(expertFile, [npzFile]);
  const py = `
import json, struct, sys, numpy as np, torch, torchvision, torch.nn.functional as F
f, npz = sys.argv[1], sys.argv[2]
b = open(f, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); data = b[8 + n:]
md = h.pop('__metadata__')
dt = {'F32': np.float32, 'I64': np.int64}
sd = {k: torch.from_numpy(np.frombuffer(data[v['data_offsets'][0]:v['data_offsets'][1]], dtype=dt[v['dtype']]).reshape(v['shape']).copy()) for k, v in h.items()}
m = getattr(torchvision.models, md['model'])(num_classes=len(json.loads(md['class_names'])))
m.load_state_dict(sd); m.eval()
x = torch.from_numpy(np.load(npz)['test_images']).float().div(255).unsqueeze(1).repeat(1, 3, 1, 1)
s = int(md['input_size'])
x = F.interpolate(x, size=(s, s), mode='bilinear', align_corners=False)
mean = torch.tensor(json.loads(md['mean'])).view(1, 3, 1, 1); std = torch.tensor(json.loads(md['std'])).view(1, 3, 1, 1)
with torch.no_grad(): p = torch.softmax(m((x - mean) / std), 1)
print(json.dumps(p.tolist()))
`;
  const theirs = JSON.parse(runPython(py, [expertFile, npzFile])) as number[][];
  assert.equal(theirs.length, 7);
  rows.forEach((r, i) => META.classNames.forEach((c, k) => assert.ok(Math.abs(r.probs[c]! - theirs[i]![k]!) < 1e-4, `row ${i} ${c}: ${r.probs[c]} vs torch ${theirs[i]![k]}`)));
});

/** Runs `lorkd predict ...args` through a commander program holding only registerPredict. */
function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const script = `
import { Command } from 'commander';
import { registerPredict } from ${JSON.stringify(path.join(repo, 'dist/src/cli/predict.js'))};
const p = new Command('lorkd');
registerPredict(p);
await p.parseAsync(process.argv.slice(1), { from: 'user' });
`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, 'predict', ...args], {
    cwd: repo,
    encoding: 'utf8',
    env: { ...process.env, LORKD_NUM_THREADS: '1' },
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('lorkd predict: JSON with accuracy and AUC, a table for people, one-line errors', () => {
  const rows = predict(expertFile, [npzFile]);
  const want = rows.filter((r) => r.class === r.label).length / rows.length;

  const j = cli(['--model', expertFile, '--input', npzFile, '--json']);
  assert.equal(j.status, 0, j.stderr);
  const out = JSON.parse(j.stdout) as { predictions: Prediction[]; metrics: { n: number; accuracy: number; auc: number } };
  assert.equal(out.predictions.length, 7);
  assert.deepEqual(out.predictions.map((r) => r.class), rows.map((r) => r.class));
  assert.equal(out.metrics.n, 7);
  assert.ok(Math.abs(out.metrics.accuracy - want) < 1e-12);
  assert.ok(out.metrics.auc >= 0 && out.metrics.auc <= 1);

  const png = path.join(dir, 'a.png');
  pngFile(png, 20, 24, 1);
  const t = cli(['--model', expertFile, '--input', npzFile, '--input', png, '--split', 'val', '--limit', '2']);
  assert.equal(t.status, 0, t.stderr);
  const lines = t.stdout.trim().split('\n');
  assert.match(lines[0]!, /^input\s+class\s+probability\s+label$/);
  assert.ok(lines[2]!.startsWith(`${npzFile}[0]`));
  assert.equal(lines.length, 2 + 2 + 1, 'header, rule, 2 rows (limit), accuracy line');
  assert.match(lines[4]!, /^accuracy \d\.\d{4}  AUC (\d\.\d{4}|n\/a)  \(2 labelled images\)$/);

  const missing = cli(['--model', path.join(dir, 'none.safetensors'), '--input', npzFile]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /^lorkd: .*none\.safetensors: expert file not found\n$/);
  const badLimit = cli(['--model', expertFile, '--input', npzFile, '--limit', '0']);
  assert.notEqual(badLimit.status, 0);
  assert.match(badLimit.stderr, /--limit must be an integer >= 1, got "0"/);
  assert.ok(!badLimit.stderr.includes('    at '), 'no stack trace');
});

test('folders: recursive, PNG + DICOM (with or without .dcm), class subfolders give labels; bad files are reported and skipped', () => {
  const root = path.join(dir, 'folder');
  const fix = path.join(repo, 'test', 'fixtures', 'dicom');
  mkdirSync(path.join(root, 'benign', 'deeper'), { recursive: true });
  mkdirSync(path.join(root, 'normal'), { recursive: true });
  const pa = pngFile(path.join(root, 'benign', 'a.png'), 20, 24, 7);
  copyFileSync(path.join(fix, 'CT_small.dcm'), path.join(root, 'benign', 'deeper', 'ct.dcm'));
  copyFileSync(path.join(fix, 'MR_small.dcm'), path.join(root, 'normal', 'IM0001')); // no extension: found by its DICM signature
  // a transfer syntax without a pixel codec: JPEG-LS's UID changed to JPIP's (same length)
  const jls = readFileSync(path.join(fix, 'MR_small_jpeg_ls_lossless.dcm')).toString('latin1').replaceAll('1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.94');
  writeFileSync(path.join(root, 'normal', 'jls.dcm'), Buffer.from(jls, 'latin1'));
  writeFileSync(path.join(root, 'normal', 'broken.png'), new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]));
  writeFileSync(path.join(root, 'normal', 'notes.txt'), 'not an image');
  symlinkSync(root, path.join(root, 'normal', 'loop')); // a link back up the tree is walked once

  const failures: string[] = [];
  const live = memory().liveTensors;
  const r = predictInputs(expertFile, [root], { onFailure: (f) => failures.push(f.error), batchSize: 2 });
  assert.equal(memory().liveTensors, live, 'no tensors left alive');
  assert.deepEqual(r.predictions.map((p) => [path.relative(root, p.input), p.label]), [
    [path.join('benign', 'a.png'), 'benign'],
    [path.join('benign', 'deeper', 'ct.dcm'), 'benign'],
    [path.join('normal', 'IM0001'), 'normal'],
  ]);
  assert.equal(r.skipped, 1, 'notes.txt');
  assert.deepEqual(r.failures.map((f) => path.relative(root, f.input)), [path.join('normal', 'broken.png'), path.join('normal', 'jls.dcm')]);
  assert.deepEqual(failures, r.failures.map((f) => f.error));
  assert.match(r.failures[1]!.error, /jls\.dcm: unsupported transfer syntax unknown \(1\.2\.840\.10008\.1\.2\.4\.94\)/);
  for (const f of r.failures) assert.ok(!f.error.includes('\n'));
  // Each prediction equals a direct forward on the decoded image (DICOM: windowed or min-max grey, repeated to 3 channels).
  checkRows(r.predictions.slice(0, 1), directProbs(pa, 1, 24, 20), 'a.png');
  const ct = decodeDicom(readFileSync(path.join(fix, 'CT_small.dcm')));
  const mr = decodeDicom(readFileSync(path.join(fix, 'MR_small.dcm')));
  checkRows(r.predictions.slice(1, 2), directProbs(grey3(ct.data, 1, 128 * 128), 1, 128, 128), 'ct.dcm');
  checkRows(r.predictions.slice(2, 3), directProbs(grey3(mr.data, 1, 64 * 64), 1, 64, 64), 'IM0001');
  // predict() (the library call) still stops at the first bad file.
  assert.throws(() => predict(expertFile, [root]), (e: unknown) => e instanceof UserError && /broken\.png: corrupt or unsupported PNG/.test(e.message));

  // The command: one line per bad file on stderr, the table and a summary, exit status 1.
  const t = cli(['--model', expertFile, '--input', root, '--input', path.join(dir, 'missing.png')]);
  assert.equal(t.status, 1, t.stderr);
  const err = t.stderr.trim().split('\n');
  assert.equal(err.length, 4, t.stderr);
  assert.match(err[0]!, /^lorkd: .*broken\.png: corrupt or unsupported PNG/);
  assert.match(err[1]!, /^lorkd: .*jls\.dcm: unsupported transfer syntax unknown/);
  assert.match(err[2]!, /^lorkd: .*missing\.png: cannot read image \(ENOENT\)$/);
  assert.equal(err[3], 'lorkd: 3 images predicted, 3 inputs failed, 1 non-image file skipped');
  assert.match(t.stdout, /accuracy \d\.\d{4} {2}AUC (\d\.\d{4}|n\/a) {2}\(3 labelled images\)/);
  assert.ok(t.stdout.trim().endsWith('3 images predicted, 3 inputs failed, 1 non-image file skipped'));
  const j = cli(['--model', expertFile, '--input', root, '--json']);
  assert.equal(j.status, 1);
  const out = JSON.parse(j.stdout) as { predictions: Prediction[]; failures: { input: string; error: string }[]; summary: Record<string, number> };
  assert.deepEqual(out.summary, { predicted: 3, failed: 2, skipped: 1 });
  assert.deepEqual(out.failures, r.failures);
});
