// Expert files: save/load round trip (same logits, same metadata), the file's layout (torchvision
// names, string metadata), loading by torchvision through Debian's PyTorch, and every refusal.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { manualSeed, memory, noGrad, randn, tidy, UserError } from '../src/tensor/index.js';
import { createModel, type ImageClassifier } from '../src/models/index.js';
import { BatchNorm2d } from '../src/nn/index.js';
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors.js';
import { type ExpertMeta, loadExpertFile, lorkdVersion, saveExpertFile } from '../src/export/expert-file.js';
import { hex } from './helpers/assert.js';
import { runPython, skipWithoutTorch } from './helpers/python.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-expert-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const META: ExpertMeta = {
  model: 'shufflenet_v2_x0_5',
  task: 'retina',
  classNames: ['0', 'mild', 'moderate'],
  inputSize: 32,
  channels: 3,
  resize: 'bilinear',
  mean: [0.5, 0.4, 0.3],
  std: [0.5, 0.25, 0.2],
  source: { decomposition: 'runs/x.safetensors', rank: '8' },
};

/**
 * A small model in eval mode whose BatchNorm statistics come from one random batch (momentum 1):
 * at initialisation the logits hardly depend on the input, after this they do.
 */
function smallModel(seed: number): ImageClassifier {
  manualSeed(seed);
  const m = createModel('shufflenet_v2_x0_5', { numClasses: 3 });
  for (const mod of m.modules()) if (mod instanceof BatchNorm2d) mod.momentum = 1;
  noGrad(() => tidy(() => m.train().forward(randn([8, 3, 32, 32]))));
  return m.eval();
}

/** Asserts that the two rows of (2, 3) logits differ clearly (the model depends on its input). */
function assertInputMatters(logits: number[]): void {
  const d = Math.max(...[0, 1, 2].map((k) => Math.abs(logits[k]! - logits[3 + k]!)));
  assert.ok(d > 0.05, `logits barely depend on the input: ${logits.join(', ')}`);
}

const isUserError = (re: RegExp) => (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n');

test('round trip: same state dict bytes, same logits, same metadata; no tensors leak', () => {
  const model = smallModel(1);
  const file = path.join(dir, 'rt.safetensors');
  const live = memory().liveTensors;
  try {
    saveExpertFile(file, model, META);
    const { model: back, meta } = loadExpertFile(file);
    try {
      assert.equal(back.training, false, 'loaded in eval mode');
      assert.deepEqual(meta, { ...META, lorkdVersion: lorkdVersion() });
      tidy(() => {
        const a = model.stateDict();
        const b = back.stateDict();
        assert.deepEqual([...b.keys()], [...a.keys()]);
        for (const [k, t] of a) assert.equal(hex(b.get(k)!.toBytes()), hex(t.toBytes()), k);
        manualSeed(5);
        const x = randn([2, 3, 32, 32]);
        const la = noGrad(() => model.forward(x));
        const lb = noGrad(() => back.forward(x));
        assert.deepEqual(la.shape, [2, 3]);
        assertInputMatters(la.toNumbers());
        assert.equal(hex(lb.toBytes()), hex(la.toBytes()), 'identical logits');
      });
    } finally {
      back.dispose();
    }
    assert.equal(memory().liveTensors, live, 'no tensors left alive');
  } finally {
    model.dispose();
  }
});

test('file layout: torchvision names, head fc.weight/fc.bias, string metadata', () => {
  const model = smallModel(2);
  const file = path.join(dir, 'layout.safetensors');
  try {
    saveExpertFile(file, model, META);
    tidy(() => {
      const { tensors, metadata } = loadSafetensors(file);
      assert.deepEqual(tensors.get('fc.weight')!.shape, [3, 1024]);
      assert.deepEqual(tensors.get('fc.bias')!.shape, [3]);
      for (const k of ['conv1.0.weight', 'conv1.1.running_var', 'stage2.0.branch2.0.weight', 'conv5.0.weight']) assert.ok(tensors.has(k), k);
      assert.deepEqual(metadata, {
        lorkd_format: 'expert',
        model: 'shufflenet_v2_x0_5',
        task: 'retina',
        class_names: '["0","mild","moderate"]',
        input_size: '32',
        channels: '3',
        resize: 'bilinear',
        mean: '[0.5,0.4,0.3]',
        std: '[0.5,0.25,0.2]',
        lorkd_version: lorkdVersion(),
        source_decomposition: 'runs/x.safetensors',
        source_rank: '8',
      });
    });
  } finally {
    model.dispose();
  }
});

test('torchvision loads the expert strictly and gives the same logits', { skip: skipWithoutTorch() }, () => {
  const model = smallModel(3);
  const file = path.join(dir, 'tv.safetensors');
  const xfile = path.join(dir, 'x.f32');
  try {
    saveExpertFile(file, model, META);
    const ours = tidy(() => {
      manualSeed(9);
      const x = randn([2, 3, 32, 32]);
      writeFileSync(xfile, x.toBytes());
      return noGrad(() => model.forward(x)).toNumbers();
    });
    // safetensors parsed by hand (the package is not installed): header JSON, then raw data.
    const py = `
import json, struct, sys, numpy as np, torch, torchvision
f, xf = sys.argv[1], sys.argv[2]
b = open(f, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); data = b[8 + n:]
md = h.pop('__metadata__')
dt = {'F32': np.float32, 'I64': np.int64}
sd = {k: torch.from_numpy(np.frombuffer(data[v['data_offsets'][0]:v['data_offsets'][1]], dtype=dt[v['dtype']]).reshape(v['shape']).copy()) for k, v in h.items()}
m = getattr(torchvision.models, md['model'])(num_classes=len(json.loads(md['class_names'])))
m.load_state_dict(sd, strict=True); m.eval()
x = torch.from_numpy(np.fromfile(xf, dtype=np.float32).reshape(2, 3, 32, 32))
with torch.no_grad(): print(json.dumps(m(x).flatten().tolist()))
`;
    assertInputMatters(ours);
    const theirs = JSON.parse(runPython(py, [file, xfile])) as number[];
    assert.equal(theirs.length, 6);
    for (let i = 0; i < 6; i++) assert.ok(Math.abs(theirs[i]! - ours[i]!) < 1e-4, `logit ${i}: torchvision ${theirs[i]} vs lorkd ${ours[i]}`);
  } finally {
    model.dispose();
  }
});

test('saving refuses metadata that does not fit the model', () => {
  const model = smallModel(4);
  const file = path.join(dir, 'bad-save.safetensors');
  try {
    assert.throws(() => saveExpertFile(file, model, { ...META, classNames: ['a', 'b'] }), isUserError(/head has 3 outputs but 2 class names/));
    assert.throws(() => saveExpertFile(file, model, { ...META, model: 'resnet18' }), isUserError(/the model is not a resnet18/));
    assert.throws(() => saveExpertFile(file, model, { ...META, model: 'shufflenet_v2_x1_0' }), isUserError(/stage2\.0\.branch1\.2\.weight has shape \[24, 24, 1, 1\], a shufflenet_v2_x1_0 with 3 channels has \[58, 24, 1, 1\]/));
    assert.throws(() => saveExpertFile(file, model, { ...META, model: 'vgg16' }), isUserError(/unknown model "vgg16"/));
    assert.throws(() => saveExpertFile(file, model, { ...META, mean: [0.5] }), isUserError(/mean has 1 values for 3 channels/));
    assert.throws(() => saveExpertFile(file, model, { ...META, std: [0.5, 0, 0.5] }), isUserError(/std must not be 0/));
    assert.throws(() => saveExpertFile(file, model, { ...META, classNames: ['a', 'b', 'a'] }), isUserError(/"a" appears twice/));
    assert.throws(() => saveExpertFile(file, model, { ...META, inputSize: 0 }), isUserError(/input_size must be a positive integer/));
    assert.throws(() => saveExpertFile(file, model, { ...META, source: { 'Bad Key': 'x' } }), isUserError(/source key "Bad Key"/));
    assert.throws(() => loadSafetensors(file), /cannot read/, 'nothing was written');
  } finally {
    model.dispose();
  }
});

test('loading refuses missing files, non-expert files and inconsistent metadata, in one line', () => {
  const model = smallModel(5);
  const good = path.join(dir, 'good.safetensors');
  try {
    saveExpertFile(good, model, META);
  } finally {
    model.dispose();
  }
  const live = memory().liveTensors;
  /** Rewrites the good file with metadata changed by `edit` (a key set to undefined is removed). */
  const variant = (name: string, edit: Record<string, string | undefined>): string => {
    const f = path.join(dir, name);
    tidy(() => {
      const { tensors, metadata } = loadSafetensors(good);
      const md: Record<string, string> = { ...metadata };
      for (const [k, v] of Object.entries(edit)) {
        if (v === undefined) delete md[k];
        else md[k] = v;
      }
      saveSafetensors(f, tensors, md);
    });
    return f;
  };
  const missing = path.join(dir, 'nope.safetensors');
  assert.throws(() => loadExpertFile(missing), isUserError(/nope\.safetensors: expert file not found/));
  const junk = path.join(dir, 'junk.safetensors');
  writeFileSync(junk, 'this is not a safetensors file');
  assert.throws(() => loadExpertFile(junk), isUserError(/junk\.safetensors: header length/));
  const plain = path.join(dir, 'plain.safetensors');
  tidy(() => saveSafetensors(plain, loadSafetensors(good).tensors));
  assert.throws(() => loadExpertFile(plain), isUserError(/plain\.safetensors: not a lorkd expert file \(no lorkd_format metadata\)/));
  const cases: [Record<string, string | undefined>, RegExp][] = [
    [{ lorkd_format: 'decomposition' }, /not a lorkd expert file \(lorkd_format is "decomposition", expected "expert"\)/],
    [{ class_names: '["a","b"]' }, /inconsistent with its metadata \(model shufflenet_v2_x0_5, 2 classes\): .*fc\.weight/],
    [{ class_names: '["a",' }, /"class_names" is not valid JSON/],
    [{ class_names: '"abc"' }, /inconsistent expert metadata: class_names must be a non-empty array of strings/],
    [{ mean: '[0.5, 0.5]' }, /inconsistent expert metadata: mean has 2 values for 3 channels/],
    [{ std: '[0.5, "x", 0.5]' }, /std must be an array of finite numbers/],
    [{ input_size: '32px' }, /"input_size" must be a positive integer, got "32px"/],
    [{ channels: '1' }, /inconsistent expert metadata: mean has 3 values for 1 channels/],
    [{ channels: '1', mean: '[0.5]', std: '[0.5]' }, /inconsistent with its metadata .*conv1\.0\.weight/],
    [{ resize: 'nearest' }, /resize must be "bilinear", got "nearest"/],
    [{ model: 'resnet18' }, /inconsistent with its metadata \(model resnet18, 3 classes\): .*missing key/],
    [{ model: 'alexnet' }, /unknown model "alexnet"/],
    [{ task: undefined }, /expert metadata lacks "task"/],
  ];
  cases.forEach(([edit, re], i) => {
    const f = variant(`bad${i}.safetensors`, edit);
    assert.throws(() => loadExpertFile(f), (e: unknown) => isUserError(re)(e) && (e as Error).message.startsWith(f), `case ${JSON.stringify(edit)}`);
  });
  assert.equal(memory().liveTensors, live, 'failed loads leave no tensors alive');
});
