// Parity with torchvision (Debian's PyTorch through /usr/bin/python3, one Python run per file):
// - every registered model's state dict has torchvision's names, order, shapes and dtypes;
// - random lorkd weights (including BN statistics) saved as safetensors load strictly into
//   torchvision.models.<name>; on the same input the logits agree in eval and train mode, and so
//   do the running statistics after the train-mode pass; in float32 and in float64.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Tensor, randn, tidy, noGrad, manualSeed } from '../src/tensor/index.js';
import { BatchNorm2d, type Module } from '../src/nn/index.js';
import { createModel, listModels } from '../src/models/index.js';
import { saveSafetensors } from '../src/io/safetensors.js';
import { runPython, skipWithoutTorch, PY_LOAD_SAFETENSORS } from './helpers/python.js';

const PARITY = ['shufflenet_v2_x1_0', 'resnet50'];
const CLASSES = 10;
/** Input side: resnet50's last stage still sees 2x2 (train-mode BN over 8 values per channel). */
const SIZE = 48;
const skip = skipWithoutTorch();

// argv: a JSON job {models, parity: [{name, weights, ours}], classes}. Reads safetensors by hand
// (the python package is not installed). Weights init is skipped: everything is overwritten.
const PY = `
import json, struct, sys, torch, torchvision
torch.nn.init.kaiming_normal_ = torch.nn.init.kaiming_uniform_ = lambda t, *a, **k: t
${PY_LOAD_SAFETENSORS}
def parity(name, wfile, ofile, classes):
    w, ours = load(wfile), load(ofile)
    x = w.pop('input')
    out = {}
    for tag, dtype in (('f32', torch.float32), ('f64', torch.float64)):
        m = getattr(torchvision.models, name)(num_classes=classes).to(dtype)
        m.load_state_dict(w, strict=True)
        xd = x.to(dtype)
        with torch.no_grad():
            le = m.eval()(xd)
            lt = m.train()(xd)
        res = {
            'eval': (le - ours[tag + '.logits_eval']).abs().max().item(),
            'train': (lt - ours[tag + '.logits_train']).abs().max().item(),
            'evalScale': le.abs().max().item(),
            'trainScale': lt.abs().max().item(),
        }
        stats, counts, n = 0.0, True, 0
        for k, v in m.named_buffers():
            o = ours[tag + '.after.' + k]
            if k.endswith('running_mean') or k.endswith('running_var'):
                # relative to the magnitude where it exceeds 1 (running variances of deep layers are large)
                stats = max(stats, ((v - o).abs() / v.abs().clamp(min=1)).max().item())
                n += 1
            elif k.endswith('num_batches_tracked'):
                counts = counts and int(v) == int(o) == 4
        res['stats'], res['counts'], res['statTensors'] = stats, counts, n
        out[tag] = res
    return out

job = json.loads(sys.argv[1])
# lorkd's small ViT is torchvision's VisionTransformer in another configuration; lorkd names every
# head fc (torchvision's ViT: heads.head).
def build(n):
    if n == 'vit_tiny_p8':
        return torchvision.models.VisionTransformer(image_size=64, patch_size=8, num_layers=12, num_heads=3, hidden_dim=192, mlp_dim=768, num_classes=7)
    return getattr(torchvision.models, n)(num_classes=7)
names = {}
for n in job['models']:
    m = build(n)
    names[n] = [[k.replace('heads.head.', 'fc.'), list(v.shape), str(v.dtype).replace('torch.', '')] for k, v in m.state_dict().items()]
print(json.dumps({'names': names, 'parity': {p['name']: parity(p['name'], p['weights'], p['ours'], job['classes']) for p in job['parity']}}))
`;

interface Diffs {
  eval: number;
  train: number;
  evalScale: number;
  trainScale: number;
  stats: number;
  counts: boolean;
  statTensors: number;
}
interface PyResult {
  names: Record<string, [string, number[], string][]>;
  parity: Record<string, Record<'f32' | 'f64', Diffs>>;
}

/**
 * Random BN affine parameters, and running statistics measured on a calibration batch (one
 * training-mode pass with a cumulative average), so that eval mode sees realistic but
 * non-default statistics that differ from the test batch's.
 */
function randomiseBatchNorm(m: Module): void {
  const bns = m.modules().filter((b): b is BatchNorm2d => b instanceof BatchNorm2d);
  noGrad(() => {
    for (const b of bns) {
      b.weight!.uniform_(0.5, 1.5);
      b.bias!.normal_(0, 0.1);
      b.resetRunningStats();
      b.momentum = null;
    }
    tidy(() => m.train().forward(randn([4, 3, SIZE, SIZE]).mul(1.5).add(0.2)));
    for (const b of bns) {
      b.momentum = 0.1;
      b.numBatchesTracked!.fill_(3);
    }
  });
}

/** Eval-mode logits, train-mode logits, then the buffers (BN statistics) after that training-mode pass. */
function run(m: Module, x: Tensor, tag: string, out: Map<string, Tensor>): void {
  noGrad(() => {
    out.set(`${tag}.logits_eval`, m.eval().forward(x));
    out.set(`${tag}.logits_train`, m.train().forward(x));
  });
  for (const [k, t] of m.namedBuffers({ prefix: `${tag}.after` })) out.set(k, t.clone());
}

/** Writes <name>-weights.safetensors (random weights + input) and <name>-ours.safetensors (our outputs). */
function prepare(name: string, dir: string): { name: string; weights: string; ours: string } {
  manualSeed(7);
  const m = createModel(name, { numClasses: CLASSES });
  randomiseBatchNorm(m);
  const files = { name, weights: path.join(dir, `${name}-weights.safetensors`), ours: path.join(dir, `${name}-ours.safetensors`) };
  tidy(() => {
    const x = randn([2, 3, SIZE, SIZE]);
    saveSafetensors(files.weights, new Map([...m.stateDict(), ['input', x]]));
    // A forward pass changes only the buffers: keep copies to rewind them for the float64 run.
    const buffers = new Map(m.namedBuffers().map(([k, t]) => [k, t.clone()]));
    const out = new Map<string, Tensor>();
    run(m, x, 'f32', out);
    m.toDtype('float64').loadStateDict(buffers, { strict: false });
    run(m, x.double(), 'f64', out);
    saveSafetensors(files.ours, out);
  });
  m.dispose();
  return files;
}

let result: PyResult;
let dir = '';
before(() => {
  if (skip) return;
  dir = mkdtempSync(path.join(tmpdir(), 'lorkd-parity-'));
  const job = { models: listModels(), parity: PARITY.map((n) => prepare(n, dir)), classes: CLASSES };
  result = JSON.parse(runPython(PY, [JSON.stringify(job)])) as PyResult;
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('state dict names, order, shapes and dtypes equal torchvision for every model', { skip }, () => {
  for (const name of listModels()) {
    const m = createModel(name, { numClasses: 7 });
    const ours = tidy(() => [...m.stateDict()].map(([k, t]) => [k, t.shape, t.dtype]));
    assert.deepEqual(ours, result.names[name], name);
    m.dispose();
  }
});

for (const name of PARITY) {
  test(`${name}: logits and running statistics equal torchvision's (float32 and float64)`, { skip }, () => {
    const r = result.parity[name]!;
    console.log(`${name}: ${JSON.stringify(r)}`);
    for (const [tag, tol] of [['f32', 1e-4], ['f64', 1e-10]] as const) {
      const d = r[tag];
      assert.ok(d.evalScale > 0.1 && d.trainScale > 0.1, `${tag}: logits are not trivially small`);
      assert.ok(d.eval <= tol, `${tag}: eval-mode logits differ by ${d.eval}`);
      assert.ok(d.train <= tol, `${tag}: train-mode logits differ by ${d.train}`);
      assert.ok(d.stats <= tol, `${tag}: running statistics differ by ${d.stats} (relative where above 1)`);
      assert.equal(d.counts, true, `${tag}: num_batches_tracked`);
      assert.ok(d.statTensors > 100);
    }
  });
}
