// After a tiny foundation + decomposition run: `lorkd export --all` writes plain
// shufflenet_v2_x1_0 experts with an n_t-class head (torchvision's names and shapes, checked
// against torchvision itself through Debian's PyTorch), whose logits from torchvision on the
// raw .npz images (preprocessed in Python as the metadata says) equal lorkd's predict path;
// `lorkd predict --json` gives those probabilities; `lorkd eval --json` equals the decomposition
// run's own evaluation, and the fused experts score what the decomposition model scores.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeTaskNpz, lorkdOk, lastJson, readRawSafetensors } from './helpers/pipeline.js';
import { runPython, skipWithoutTorch } from './helpers/python.js';
import { noGrad, setNumThreads, tidy } from '../src/tensor/index.js';
import { createModel } from '../src/models/index.js';
import { loadMedMnist, TaskSuite } from '../src/data/index.js';
import { loadExpertFile } from '../src/export/expert-file.js';
import { preprocess, type Prediction } from '../src/export/predict.js';
import { readDecomposition } from '../src/lorkd/checkpoint.js';
import { evalDecomposition, type TaskResult } from '../src/experiments/evaluate.js';
import { evalLoader } from '../src/experiments/data-options.js';
import type { RunResults } from '../src/experiments/report.js';

setNumThreads(1); // a shared machine, as the lorkd children (LORKD_NUM_THREADS=1)
const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-export-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = path.join(dir, 'grey2.npz');
const B = path.join(dir, 'rgb3.npz');
const TASKS: { name: string; file: string; classes: number }[] = [
  { name: 'grey2', file: A, classes: 2 },
  { name: 'rgb3', file: B, classes: 3 },
];
const RUN = path.join(dir, 'run');
const EXPERTS = path.join(RUN, 'experts');
const DATA = ['--tasks', `${A},${B}`, '--input', '16', '--seed', '3', '--quiet'];
const MEAN = [0.5, 0.5, 0.5];
const STD = [0.5, 0.5, 0.5];
let decomposeBestVal = 0;
let foundationBestVal = 0;
let files: string[] = [];
/** lorkd predict --json on each task's test split, with its expert. */
let predictions: { predictions: Prediction[]; metrics: { accuracy: number; n: number } }[] = [];

before(() => {
  writeTaskNpz(A, { classes: 2, sizes: { train: 64, val: 40, test: 48 }, seed: 11 });
  writeTaskNpz(B, { classes: 3, sizes: { train: 64, val: 40, test: 48 }, rgb: true, seed: 12 });
  // The demo's layout: foundation and decomposition in one run directory.
  const f = lastJson<{ best_val_accuracy: number }>(lorkdOk(['foundation', ...DATA, '--batch', '64', '--arch', 'resnet18', '--lr', '0.01', '--epochs', '1', '--json', '--out', RUN]).stdout);
  foundationBestVal = f.best_val_accuracy;
  const d = lastJson<{ best_val_accuracy: number }>(
    lorkdOk(['decompose', ...DATA, '--batch', '16', '--foundation', path.join(RUN, 'foundation.safetensors'), '--strategy', 'fused', '--epochs', '2', '--json', '--out', RUN]).stdout,
  );
  decomposeBestVal = d.best_val_accuracy;
  files = lastJson<{ files: string[] }>(lorkdOk(['export', '--run', RUN, '--all', '--out', EXPERTS, '--json']).stdout).files;
  predictions = TASKS.map((t, i) => lastJson(lorkdOk(['predict', '--model', files[i]!, '--input', t.file, '--json']).stdout));
});

test('export --all: one file per task, a plain shufflenet_v2_x1_0 with an n_t-class head, preprocessing in the metadata', () => {
  assert.deepEqual(files.map((f) => path.basename(f)), TASKS.map((t) => `${t.name}.safetensors`));
  for (const [i, t] of TASKS.entries()) {
    assert.ok(existsSync(files[i]!));
    const raw = readRawSafetensors(files[i]!);
    const plain = createModel('shufflenet_v2_x1_0', { numClasses: t.classes });
    try {
      const want = tidy(() => [...plain.stateDict()].map(([k, v]) => [k, v.shape.join('x')] as const).sort());
      const got = [...raw.tensors].map(([k, v]) => [k, v.shape.join('x')] as const).sort();
      assert.equal(got.length, want.length, 'as many tensors as a plain shufflenet_v2_x1_0');
      assert.deepEqual(got, want, 'same names and shapes');
    } finally {
      plain.dispose();
    }
    assert.deepEqual(raw.tensors.get('fc.weight')!.shape, [t.classes, 1024]);
    assert.ok(![...raw.tensors.keys()].some((k) => k.includes('expert') || k.startsWith('heads.')), 'no expert factors or per-task heads');
    const m = raw.metadata;
    assert.equal(m.lorkd_format, 'expert');
    assert.equal(m.model, 'shufflenet_v2_x1_0');
    assert.equal(m.task, t.name);
    assert.deepEqual(JSON.parse(m.class_names!), Array.from({ length: t.classes }, (_, k) => String(k)));
    assert.equal(m.input_size, '16');
    assert.equal(m.channels, '3');
    assert.equal(m.resize, 'bilinear');
    assert.deepEqual(JSON.parse(m.mean!), MEAN);
    assert.deepEqual(JSON.parse(m.std!), STD);
  }
});

const PY = `
import sys, json, struct
import numpy as np, torch, torch.nn.functional as F, torchvision
torch.set_num_threads(1)
DT = {'F32': torch.float32, 'F64': torch.float64, 'I64': torch.int64}
def load(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop('__metadata__', {})
    sd = {}
    for k, v in h.items():
        s, e = v['data_offsets']
        t = torch.frombuffer(bytearray(b[8 + n + s:8 + n + e]), dtype=DT[v['dtype']]) if e > s else torch.zeros(0, dtype=DT[v['dtype']])
        sd[k] = t.reshape(v['shape'])
    return sd, meta
out = []
for expert, npz in zip(sys.argv[1::2], sys.argv[2::2]):
    sd, meta = load(expert)
    names = json.loads(meta['class_names'])
    m = torchvision.models.shufflenet_v2_x1_0(num_classes=len(names))
    ref = m.state_dict()
    m.load_state_dict(sd, strict=True)
    m.eval()
    x = np.load(npz)['test_images']
    if x.ndim == 3:
        x = np.repeat(x[..., None], int(meta['channels']), axis=3)
    x = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    s = int(meta['input_size'])
    x = F.interpolate(x, size=(s, s), mode='bilinear', align_corners=False)
    x = (x - torch.tensor(json.loads(meta['mean'])).view(1, -1, 1, 1)) / torch.tensor(json.loads(meta['std'])).view(1, -1, 1, 1)
    with torch.no_grad():
        logits = m(x)
    out.append({'keys': sorted(ref.keys()), 'shapes': {k: list(v.shape) for k, v in ref.items()}, 'logits': logits.tolist(), 'probs': torch.softmax(logits, 1).tolist()})
print(json.dumps(out))
`;

const maxAbsDiff = (a: number[][], b: number[][]): number => {
  assert.equal(a.length, b.length);
  let m = 0;
  a.forEach((r, i) => {
    assert.equal(r.length, b[i]!.length);
    r.forEach((v, j) => (m = Math.max(m, Math.abs(v - b[i]![j]!))));
  });
  return m;
};

test('torchvision loads each expert strictly and gives the logits of lorkd predict (and predict --json)', { skip: skipWithoutTorch() }, (tc) => {
  const py = JSON.parse(runPython(PY, TASKS.flatMap((t, i) => [files[i]!, t.file]))) as { keys: string[]; shapes: Record<string, number[]>; logits: number[][]; probs: number[][] }[];
  for (const [i, t] of TASKS.entries()) {
    const raw = readRawSafetensors(files[i]!);
    assert.deepEqual([...raw.tensors.keys()].sort(), py[i]!.keys, "the file's names are torchvision's state_dict keys");
    for (const [k, s] of Object.entries(py[i]!.shapes)) assert.deepEqual(raw.tensors.get(k)!.shape, s, k);

    // lorkd's predict path: the file's metadata, preprocess, forward.
    const { model, meta } = loadExpertFile(files[i]!);
    let logits: number[][];
    try {
      const s = loadMedMnist(t.file).splits.test;
      logits = tidy(() =>
        noGrad(() => {
          const y = model.forward(preprocess(meta, s.images, s.n, s.height, s.width));
          const a = y.toArray() as Float32Array;
          return Array.from({ length: s.n }, (_, r) => Array.from(a.subarray(r * t.classes, (r + 1) * t.classes)));
        }),
      );
    } finally {
      model.dispose();
    }
    const d = maxAbsDiff(logits, py[i]!.logits);
    assert.ok(d <= 1e-4, `${t.name}: logits differ from torchvision's by ${d}`);
    const col = logits.map((r) => r[0]! - r[1]!);
    const spread = Math.max(...col) - Math.min(...col);
    tc.diagnostic(`${t.name}: max |logit lorkd - torchvision| = ${d.toExponential(2)}, spread of logit0-logit1 over images ${spread.toExponential(2)}`);
    assert.ok(spread > 1e-2, 'the logits depend on the image (else the comparison says nothing about preprocessing)');

    const pred = predictions[i]!;
    assert.equal(pred.predictions.length, 48);
    const names = meta.classNames;
    const probs = pred.predictions.map((p) => names.map((c) => p.probs[c]!));
    const dp = maxAbsDiff(probs, py[i]!.probs);
    assert.ok(dp <= 1e-4, `${t.name}: predict --json probabilities differ from torchvision's by ${dp}`);
    pred.predictions.forEach((p, k) => {
      assert.equal(p.index, k);
      assert.equal(p.label, String(k % t.classes), 'labels of the npz');
      const best = probs[k]!.indexOf(Math.max(...probs[k]!));
      assert.equal(p.class, names[best]);
    });
  }
});

test('lorkd eval --json equals the decomposition run, and the fused experts score what the decomposition model scores', (tc) => {
  const val = lastJson<RunResults>(lorkdOk(['eval', '--run', RUN, ...DATA, '--split', 'val', '--json']).stdout);
  assert.equal(val.lorkd.mean_accuracy, decomposeBestVal, 'mean validation accuracy of the final decomposition = its best_val_accuracy');
  assert.equal(val.foundation.mean_accuracy, foundationBestVal, 'mean validation accuracy of the foundation (unified head) = its best_val_accuracy');

  const r = lastJson<RunResults>(lorkdOk(['eval', '--run', RUN, ...DATA, '--json']).stdout);
  assert.equal(r.split, 'test');
  assert.deepEqual(r.tasks, TASKS.map((t) => t.name));
  assert.ok(existsSync(path.join(RUN, 'eval-test.json')));
  // The decomposition model evaluated here, in-process, on the same test split.
  const suite = TaskSuite.fromMedMnist([A, B]);
  const { model: dm } = readDecomposition(path.join(RUN, 'decomposition.safetensors'), { strategy: 'fused' });
  let mine: TaskResult[];
  try {
    dm.toChannelsLast();
    mine = evalDecomposition(dm, suite, evalLoader(suite, { tasks: [A, B], input: 16, batch: 64, seed: 3 }, 'test'), true);
  } finally {
    dm.dispose();
  }
  assert.deepEqual(r.lorkd.per_task, mine, 'per-task accuracy and AUC of the decomposition model');
  tc.diagnostic(`test accuracy per task: ${mine.map((m) => `${m.task} ${m.accuracy.toFixed(3)} (AUC ${m.auc.toFixed(3)})`).join(', ')}; val mean ${decomposeBestVal}`);
  assert.equal(r.lorkd.mean_accuracy, (mine[0]!.accuracy + mine[1]!.accuracy) / 2);
  for (const [i, t] of TASKS.entries()) {
    const e = r.lorkd.fused_experts[i]!;
    assert.equal(e.task, t.name);
    assert.equal(e.n, 48);
    assert.equal(e.accuracy, r.lorkd.per_task[i]!.accuracy, `${t.name}: fused expert accuracy = decomposition model accuracy`);
    assert.ok(Math.abs(e.auc - r.lorkd.per_task[i]!.auc) <= 1e-3, `${t.name}: AUC ${e.auc} vs ${r.lorkd.per_task[i]!.auc}`);
    // The exported file, through lorkd predict, scores the same on the same images.
    const pred = predictions[i]!;
    assert.equal(pred.metrics.n, 48);
    assert.equal(pred.metrics.accuracy, e.accuracy, `${t.name}: predict accuracy = eval's fused expert accuracy`);
  }
  for (const x of [...r.foundation.unified, ...r.foundation.restricted, ...r.lorkd.per_task]) {
    assert.ok(x.accuracy >= 0 && x.accuracy <= 1);
  }
});
