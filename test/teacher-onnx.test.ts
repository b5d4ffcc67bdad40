// An ONNX file as the teacher (src/experiments/teacher/): a ResNet foundation exported by lorkd's
// own exporter fills a teacher cache equal to the safetensors teacher's (1e-4), from its metadata
// or, stripped of it, from the --teacher-* flags with its outputs found by shape; the cache is
// reused; a decomposition trains from it. Refusals, each one line: missing preprocessing, a
// missing output, mismatched classes, a teacher without what --kd needs, ambiguous outputs;
// `lorkd export --format onnx --model FOUNDATION` writes the teacher file.
// Optional (python3-torch): a torchvision ViT exported by torch.onnx.export runs as a teacher,
// its outputs equal torch's, and LoRKD distils from its pooled features.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeTaskNpz, lorkd } from './helpers/pipeline.js';
import { runPython, skipWithoutTorch } from './helpers/python.js';
import { manualSeed, setNumThreads, Tensor, tensor, UserError } from '../src/tensor/index.js';
import { createModel } from '../src/models/index.js';
import { saveFoundation } from '../src/experiments/foundation-file.js';
import { foundationToOnnx } from '../src/export/onnx/foundation.js';
import { decodeModel, encodeModel, writeOnnx } from '../src/export/onnx/index.js';
import { openTeacherFile, checkTeacher, chooseOutputs, type Teacher, type TeacherFlags } from '../src/experiments/teacher/index.js';
import { teacherOutputs, type TeacherCache } from '../src/experiments/teacher-cache.js';
import { loadSuite, trainLoader } from '../src/experiments/data-options.js';
import { RunDir } from '../src/experiments/run-dir.js';
import { createProgress, type Progress } from '../src/experiments/progress.js';
import { trainDecomposition, type DecomposeOptions } from '../src/experiments/decompose.js';

setNumThreads(1);
const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-teacher-onnx-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = path.join(dir, 'a2.npz');
const B = path.join(dir, 'b3.npz');
const C = path.join(dir, 'c4.npz');
writeTaskNpz(A, { classes: 2, sizes: { train: 20, val: 6, test: 6 }, seed: 1 });
writeTaskNpz(B, { classes: 3, sizes: { train: 20, val: 6, test: 6 }, seed: 2 });
writeTaskNpz(C, { classes: 4, sizes: { train: 8, val: 4, test: 4 }, seed: 3 });
const data = { tasks: [A, B], input: 16, batch: 8, seed: 0 };
const suite = loadSuite(data);
const quiet = createProgress({ quiet: true });
const S = 20;
const MEAN = [0.4, 0.5, 0.6];
const STD = [0.2, 0.25, 0.3];

// A resnet18 foundation over the suite's 5 classes, random weights with non-trivial BatchNorm statistics.
manualSeed(3);
const net = createModel('resnet18', { numClasses: 5 });
for (const [k, t] of net.namedBuffers()) {
  if (k.endsWith('running_mean')) t.copy_(tensor(Float32Array.from({ length: t.numel }, (_, i) => 0.1 * Math.sin(i)), t.shape));
  if (k.endsWith('running_var')) t.copy_(tensor(Float32Array.from({ length: t.numel }, (_, i) => 1 + 0.5 * Math.cos(i) ** 2), t.shape));
}
const meta = { model: 'resnet18', tasks: suite.tasks.map((t) => ({ name: t.name, classNames: t.classNames.slice() })), input: S, mean: MEAN, std: STD };
const SAFE = path.join(dir, 'foundation.safetensors');
saveFoundation(SAFE, net, meta);
const ONNX = writeOnnx(path.join(dir, 'foundation.onnx'), foundationToOnnx(net, meta));
net.dispose();
// The same file without lorkd's metadata, as a model from elsewhere would come.
const model = decodeModel(readFileSync(ONNX));
delete model.metadata_props;
const BARE = writeOnnx(path.join(dir, 'bare.onnx'), encodeModel(model));
const FLAGS: TeacherFlags = { input: S, mean: MEAN, std: STD };

async function fill(file: string, flags: TeacherFlags, out: string, progress: Progress = quiet): Promise<{ t: Teacher; cache: TeacherCache }> {
  const t = await openTeacherFile(file, flags, suite.totalClasses, ['features', 'logits']);
  t.place('cpu', true);
  const cache = await teacherOutputs(t, trainLoader(suite, data), RunDir.open(out, { resume: true, marker: '-' }), progress);
  return { t, cache };
}

function maxDiff(x: ArrayLike<number> | Tensor, y: ArrayLike<number> | Tensor): number {
  const a = (x instanceof Tensor ? x.toArray() : x) as ArrayLike<number>;
  const b = (y instanceof Tensor ? y.toArray() : y) as ArrayLike<number>;
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('an ONNX foundation fills a teacher cache equal to the safetensors teacher\'s (1e-4), from its metadata or from flags; the cache is reused', { timeout: 120_000 }, async () => {
  const ref = await fill(SAFE, {}, path.join(dir, 'c-safe'));
  const onnx = await fill(ONNX, {}, path.join(dir, 'c-onnx'));
  const bare = await fill(BARE, FLAGS, path.join(dir, 'c-bare'));
  assert.deepEqual(onnx.t.outputs, ['features', 'logits']);
  assert.deepEqual(onnx.t.tasks, meta.tasks, 'the class list comes from lorkd_tasks');
  assert.equal(bare.t.tasks, null, 'a file without metadata does not say its classes');
  assert.deepEqual(bare.t.outputs, ['features', 'logits'], 'outputs found by shape: (N, 512) features, (N, 5) logits');
  assert.equal(bare.t.numFeatures, 512);
  const n = suite.split('train').n;
  for (const c of [onnx.cache, bare.cache]) {
    assert.deepEqual([c.features!.shape.rows, c.features!.width], [2 * n, 512]);
    assert.deepEqual([c.logits!.shape.rows, c.logits!.width], [2 * n, 5]);
    const f = maxDiff(c.features!.all(), ref.cache.features!.all());
    const l = maxDiff(c.logits!.all(), ref.cache.logits!.all());
    assert.ok(f < 1e-4 && l < 1e-4, `features ${f}, logits ${l}`);
  }
  const refLogits = ref.cache.logits!.all();
  const flipped = maxDiff(refLogits.narrow(0, 0, n), refLogits.narrow(0, n, n));
  assert.ok(flipped > 1e-3, 'the flipped view is a different input');
  // Resumable: a second fill reads the cache file (the teacher is not run).
  const logs: string[] = [];
  const again = await fill(ONNX, {}, path.join(dir, 'c-onnx'), { ...quiet, log: (s: string) => logs.push(s), start: () => assert.fail('the teacher ran again') });
  assert.match(logs.join('\n'), /teacher outputs from cache/);
  assert.equal(maxDiff(again.cache.features!.all(), onnx.cache.features!.all()), 0);
  assert.equal(readdirSync(path.join(dir, 'c-onnx')).filter((f) => f.startsWith('teacher-cache-') && f.endsWith('.json')).length, 1);
  for (const r of [ref, onnx, bare, again]) {
    r.cache.dispose();
    await r.t.dispose();
  }
});

const BASE: DecomposeOptions = {
  ...data, model: 'shufflenet_v2_x0_5', rank: 2, alpha: 4, beta: 1, kd: 'logits', strategy: 'fused', epochs: 1, lr: 0.01, momentum: 0.9, weightDecay: 1e-4, out: '', progress: quiet,
};

test('lorkd decompose distils from an ONNX teacher (logit KD): trained, its cache in the run directory', { timeout: 120_000 }, async () => {
  const out = path.join(dir, 'dec-onnx');
  const r = await trainDecomposition({ ...BASE, foundation: BARE, teacher: FLAGS, out });
  assert.ok(r.result.history.length === 1 && Number.isFinite(r.result.history[0]!.loss));
  assert.ok(existsSync(r.file));
  assert.equal(readdirSync(out).filter((f) => f.startsWith('teacher-cache-') && f.endsWith('.json')).length, 1);
  r.dm.dispose();
});

test('refusals, one line each, before the run directory is made', { timeout: 60_000 }, async () => {
  const refused = async (o: Partial<DecomposeOptions>, re: RegExp) => {
    const out = path.join(dir, `refused-${Math.random().toString(36).slice(2)}`);
    await assert.rejects(trainDecomposition({ ...BASE, ...o, out }), (e: Error) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n'));
    assert.equal(existsSync(out), false, 'no run directory');
  };
  await refused({ foundation: BARE }, /bare\.onnx does not state its preprocessing \(no lorkd_preprocessing metadata\): give --teacher-input, --teacher-mean, --teacher-std/);
  await refused({ foundation: BARE, teacher: { ...FLAGS, std: undefined } }, /give --teacher-std$/);
  await refused({ foundation: ONNX, teacher: { input: 32 } }, /states its preprocessing in its metadata: --teacher-input do not apply/);
  await refused({ foundation: SAFE, teacher: { logits: 'x' } }, /--teacher-logits apply to an ONNX teacher/);
  await refused({ foundation: BARE, teacher: { ...FLAGS, logits: 'scores' } }, /has no output "scores" \(--teacher-logits\); outputs: features \[N, 512\], logits \[N, 5\]/);
  await refused({ foundation: BARE, teacher: { ...FLAGS, input: 8 } }, /cannot run on \[\d+, 3, 8, 8\] inputs/);
  // Mismatched classes: the suite a2+c4 has 6 classes; the teacher's logits cover 5.
  await refused({ tasks: [A, C], foundation: BARE, teacher: FLAGS }, /gives neither pooled features nor logits \(outputs: features \[N, 512\], logits \[N, 5\]\); lorkd --kd logits distils from logits over the suite's 6 classes \(name an output with --teacher-logits NAME\)/);
  await refused({ tasks: [A, C], foundation: BARE, teacher: { ...FLAGS, logits: 'logits' } }, /gives logits over 5 classes, the suite has 6/);
  await refused({ tasks: [A, C], foundation: ONNX }, /was trained on tasks a2:2,b3:3, not a2:2,c4:4/);
  // Feature KD of the same suite: both outputs are (N, F) and neither is the suite's logits, so the features must be named.
  await refused({ tasks: [A, C], kd: 'feature', foundation: BARE, teacher: FLAGS }, /bare\.onnx: features, logits could each be the features: name one with --teacher-features NAME; outputs: features \[N, 512\], logits \[N, 5\]$/);
  const t = await openTeacherFile(BARE, { ...FLAGS, features: 'features' }, 6, ['features']);
  checkTeacher(t, ['features'], loadSuite({ tasks: [A, C] }), 'lorkd');
  assert.deepEqual(t.outputs, ['features']);
  await t.dispose();
});

test('outputs chosen by name or by shape; ambiguity lists the outputs', () => {
  const outs = [{ name: 'a', dims: [64] }, { name: 'b', dims: [64] }, { name: 'map', dims: [64, 2, 2] }, { name: 'y', dims: [5] }];
  assert.throws(() => chooseOutputs('m.onnx', outs, {}, 5, ['features']), /^UserError: m\.onnx: a, b could each be the features: name one with --teacher-features NAME; outputs: a \[N, 64\], b \[N, 64\], map \[N, 64, 2, 2\], y \[N, 5\]$/);
  assert.deepEqual(chooseOutputs('m.onnx', outs, {}, 5, ['logits']), { features: null, logits: outs[3] }, 'an unneeded ambiguity is left unchosen');
  assert.deepEqual(chooseOutputs('m.onnx', outs, { features: 'b' }, 5, ['features', 'logits']), { features: outs[1], logits: outs[3] });
  assert.throws(() => chooseOutputs('m.onnx', outs, { features: 'map' }, 5, ['features']), /output "map" \(--teacher-features\) is \[N, 64, 2, 2\], not \(N, F\)/);
  const twoLogits = [{ name: 'p', dims: [5] }, { name: 'q', dims: [5] }];
  assert.throws(() => chooseOutputs('m.onnx', twoLogits, {}, 5, ['logits']), /p, q could each be the logits: name one with --teacher-logits NAME/);
});

test('the CLI refuses an ONNX teacher without preprocessing in one line (exit 2)', { timeout: 60_000 }, () => {
  const out = path.join(dir, 'cli-refused');
  const r = lorkd(['decompose', '--tasks', `${A},${B}`, '--input', '16', '--foundation', BARE, '--teacher-mean', '0.5,0.5,0.5', '--out', out, '--quiet']);
  assert.equal(r.status, 2);
  assert.match(r.stderr.trim(), /^lorkd: \S+bare\.onnx does not state its preprocessing \(no lorkd_preprocessing metadata\): give --teacher-input, --teacher-std$/);
  const bad = lorkd(['run', '--method', 'stl-kd', '--tasks', `${A},${B}`, '--foundation', BARE, '--teacher-mean', '0.5,0.5', '--out', out]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr.trim(), /^lorkd: --teacher-mean must be 3 comma-separated numbers \(R,G,B\), got "0\.5,0\.5"$/);
  assert.equal(existsSync(out), false);
  // lorkd export --format onnx --model FOUNDATION writes the teacher file: the exporter's bytes.
  const exported = path.join(dir, 'cli-foundation.onnx');
  const e = lorkd(['export', '--model', SAFE, '--format', 'onnx', '--out', exported]);
  assert.equal(e.status, 0, e.stderr);
  assert.deepEqual(readFileSync(exported), readFileSync(ONNX));
});

const VIT = `
import sys, torch
from torchvision.models.vision_transformer import VisionTransformer
torch.manual_seed(0)
v = VisionTransformer(image_size=16, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=5).eval()
class Teacher(torch.nn.Module):
    def __init__(s, v):
        super().__init__()
        s.v = v
    def forward(s, x):
        t = s.v._process_input(x)
        t = torch.cat([s.v.class_token.expand(t.shape[0], -1, -1), t], dim=1)
        f = s.v.encoder(t)[:, 0]
        return f, s.v.heads(f)
m = Teacher(v).eval()
x = torch.randn(4, 3, 16, 16)
torch.onnx.export(m, x, sys.argv[1], input_names=['pixels'], output_names=['pooled', 'scores'], dynamic_axes={'pixels': {0: 'n'}, 'pooled': {0: 'n'}, 'scores': {0: 'n'}}, opset_version=14)
with torch.no_grad():
    f, y = m(x)
open(sys.argv[2], 'wb').write(x.numpy().tobytes() + f.numpy().tobytes() + y.numpy().tobytes())
`;

test('a torchvision ViT exported by torch.onnx.export is a teacher: torch\'s outputs, and LoRKD distils from its pooled features', { skip: skipWithoutTorch(), timeout: 180_000 }, async () => {
  const file = path.join(dir, 'vit.onnx');
  const ref = path.join(dir, 'vit.bin');
  runPython(VIT, [file, ref]);
  const raw = new Float32Array(readFileSync(ref).buffer.slice(0));
  const x = raw.subarray(0, 4 * 3 * 16 * 16);
  const f = raw.subarray(x.length, x.length + 4 * 32);
  const y = raw.subarray(x.length + f.length);
  const vitFlags = { input: 16, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
  const t = await openTeacherFile(file, vitFlags, suite.totalClasses, ['features']);
  assert.deepEqual(t.outputs, ['features', 'logits'], 'pooled (N, 32) features and scores (N, 5) logits, by shape');
  const out = await t.forward(tensor(Float32Array.from(x), [4, 3, 16, 16]));
  assert.ok(maxDiff(out.features!, f) < 1e-4 && maxDiff(out.logits!, y) < 1e-4, 'onnxruntime gives torch\'s outputs');
  out.features!.dispose();
  out.logits!.dispose();
  await t.dispose();
  const r = await trainDecomposition({ ...BASE, kd: 'feature', foundation: file, teacher: { ...vitFlags, features: 'pooled' }, out: path.join(dir, 'dec-vit') });
  assert.ok(Number.isFinite(r.result.history[0]!.loss));
  r.dm.dispose();
});
