// The ViT layers and model against Debian's PyTorch (/usr/bin/python3, torch + torchvision; the
// tests skip cleanly without it), in float64, outputs and gradients:
// - LayerNorm, GELU (exact erf form), MultiheadAttention (self-attention, batch_first), MLPBlock,
//   the position-embedding resize (torchvision's interpolate_embeddings, bicubic);
// - the whole VisionTransformer against torchvision.models.VisionTransformer with the same weights
//   (a small configuration, random weights): logits, the gradient of every parameter and of the
//   input; and at another input size, against torchvision with its own interpolated embeddings.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Tensor, randn, tidy, noGrad, manualSeed, memory } from '../src/tensor/index.js';
import { LayerNorm, GELU, MultiheadAttention, MLPBlock, resizePositionEmbedding, type Module } from '../src/nn/index.js';
import { VisionTransformer, type ViTConfig } from '../src/models/index.js';
import { saveSafetensors } from '../src/io/safetensors.js';
import { runPython, skipWithoutTorch, PY_LOAD_SAFETENSORS } from './helpers/python.js';

const skip = skipWithoutTorch();
const SMALL: ViTConfig = { patch: 8, dim: 16, depth: 2, heads: 2, mlpDim: 32, imageSize: 32 };
const CLASSES = 5;

// argv: weights file, ours file. W[layer.x] input, W[layer.g] upstream gradient, W[layer.p.NAME]
// parameters; O[layer.y], O[layer.dx], O[layer.d.NAME]. Prints per layer the largest difference
// of each output relative to max(1, |reference|max).
const PY = `
import json, struct, sys, torch, torchvision
from torchvision.models.vision_transformer import MLPBlock, VisionTransformer, interpolate_embeddings
${PY_LOAD_SAFETENSORS}W, O = load(sys.argv[1]), load(sys.argv[2])
cfg = json.loads(sys.argv[3])
def diff(ref, ours):
    return (ref - ours).abs().max().item() / max(1.0, ref.abs().max().item())
def check(layer, m, fwd, rename=lambda k: k):
    params = {rename(k[len(layer) + 3:]): v for k, v in W.items() if k.startswith(layer + '.p.')}
    if m is not None:
        m = m.double()
        m.load_state_dict(params, strict=True)
    x = W[layer + '.x'].clone().requires_grad_(True)
    y = fwd(m, x)
    (y * W[layer + '.g']).sum().backward()
    r = {'y': diff(y.detach(), O[layer + '.y']), 'dx': diff(x.grad, O[layer + '.dx']), 'scale': y.abs().max().item()}
    if m is not None:
        inv = {rename(k[len(layer) + 3:]): k[len(layer) + 3:] for k in W if k.startswith(layer + '.p.')}
        for k, p in m.named_parameters():
            r['d.' + inv[k]] = diff(p.grad, O[layer + '.d.' + inv[k]])
        r['params'] = sum(1 for _ in m.parameters())
    return r
to_tv = lambda k: 'heads.head.' + k[3:] if k.startswith('fc.') else k
small = dict(patch_size=cfg['patch'], num_layers=cfg['depth'], num_heads=cfg['heads'], hidden_dim=cfg['dim'], mlp_dim=cfg['mlpDim'], num_classes=cfg['classes'])
out = {
    'layernorm': check('layernorm', torch.nn.LayerNorm(16, eps=1e-6), lambda m, x: m(x)),
    'gelu': check('gelu', None, lambda m, x: torch.nn.functional.gelu(x)),
    'attention': check('attention', torch.nn.MultiheadAttention(16, 4, batch_first=True), lambda m, x: m(x, x, x, need_weights=False)[0]),
    'mlp': check('mlp', MLPBlock(16, 32, 0.0), lambda m, x: m(x)),
    'resize': check('resize', None, lambda m, x: interpolate_embeddings(6, 1, {'encoder.pos_embedding': x})['encoder.pos_embedding']),
    'vit': check('vit', VisionTransformer(image_size=cfg['imageSize'], **small), lambda m, x: m(x), to_tv),
}
# At 48 px: torchvision's own interpolate_embeddings on the state dict, a model made for 48.
sd = {to_tv(k[6:]): v for k, v in W.items() if k.startswith('vit.p.')}
m48 = VisionTransformer(image_size=48, **small).double()
m48.load_state_dict(interpolate_embeddings(48, cfg['patch'], sd), strict=True)
with torch.no_grad():
    ref = m48(W['vit48.x'])
out['vit48'] = {'y': diff(ref, O['vit48.y']), 'scale': ref.abs().max().item()}
print(json.dumps(out))
`;

type Result = Record<string, Record<string, number>>;

/** y = layer(x), then the gradients of sum(y * g): writes x, g, parameters, y, dx, d.NAME. */
function record(name: string, fwd: (x: Tensor) => Tensor, x: Tensor, m: Module | null, W: Map<string, Tensor>, O: Map<string, Tensor>): void {
  const xg = x.detach().requiresGrad_(true);
  const y = fwd(xg);
  const g = randn(y.shape, { dtype: 'float64' });
  y.mul(g).sum().backward();
  W.set(`${name}.x`, x);
  W.set(`${name}.g`, g);
  O.set(`${name}.y`, y.detach());
  O.set(`${name}.dx`, xg.grad!);
  for (const [k, p] of m?.namedParameters() ?? []) {
    W.set(`${name}.p.${k}`, p.detach().clone());
    O.set(`${name}.d.${k}`, p.grad!);
  }
}

/** Every parameter redrawn (zero-initialised heads, biases and tokens would hide mistakes). */
function randomise(m: Module): void {
  noGrad(() => {
    for (const p of m.parameters()) p.normal_(0, 0.3);
  });
}

let result: Result;
let dir = '';
before(() => {
  if (skip) return;
  dir = mkdtempSync(path.join(tmpdir(), 'lorkd-vit-parity-'));
  const files = { w: path.join(dir, 'w.safetensors'), o: path.join(dir, 'o.safetensors') };
  manualSeed(11);
  const layers: Module[] = [];
  tidy(() => {
    const W = new Map<string, Tensor>();
    const O = new Map<string, Tensor>();
    const f64 = <M extends Module>(m: M): M => (layers.push(m), randomise(m.toDtype('float64')), m);
    const ln = f64(new LayerNorm(16, { eps: 1e-6 }));
    record('layernorm', (x) => ln.forward(x), randn([2, 5, 16], { dtype: 'float64' }).mul(2).add(1), ln, W, O);
    const gelu = new GELU();
    record('gelu', (x) => gelu.forward(x), randn([3, 7], { dtype: 'float64' }).mul(3), null, W, O);
    const attn = f64(new MultiheadAttention(16, 4));
    record('attention', (x) => attn.forward(x), randn([2, 5, 16], { dtype: 'float64' }), attn, W, O);
    const mlp = f64(new MLPBlock(16, 32));
    record('mlp', (x) => mlp.forward(x), randn([2, 5, 16], { dtype: 'float64' }), mlp, W, O);
    record('resize', (x) => resizePositionEmbedding(x, 6), randn([1, 17, 8], { dtype: 'float64' }), null, W, O);
    const vit = f64(new VisionTransformer(SMALL, { numClasses: CLASSES }));
    record('vit', (x) => vit.forward(x), randn([2, 3, 32, 32], { dtype: 'float64' }), vit, W, O);
    const x48 = randn([2, 3, 48, 48], { dtype: 'float64' });
    W.set('vit48.x', x48);
    O.set('vit48.y', noGrad(() => vit.forward(x48)));
    saveSafetensors(files.w, W);
    saveSafetensors(files.o, O);
  });
  for (const m of layers) m.dispose();
  result = JSON.parse(runPython(PY, [files.w, files.o, JSON.stringify({ ...SMALL, classes: CLASSES })])) as Result;
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const TOL = 1e-10;
function assertLayer(name: string, expectedParams: number): void {
  const r = result[name]!;
  console.log(`${name}: ${JSON.stringify(r)}`);
  assert.ok(r.scale! > 0.1, `${name}: outputs are not trivially small`);
  for (const [k, v] of Object.entries(r)) {
    if (k === 'scale' || k === 'params') continue;
    assert.ok(v <= TOL, `${name}: ${k} differs by ${v} (relative)`);
  }
  assert.equal(r.params ?? 0, expectedParams, `${name}: every parameter's gradient was compared`);
  assert.equal(Object.keys(r).filter((k) => k.startsWith('d.')).length, expectedParams);
}

test('LayerNorm: output and gradients (input, weight, bias) equal torch.nn.LayerNorm', { skip }, () => assertLayer('layernorm', 2));
test('GELU: exact erf form, output and input gradient equal torch.nn.functional.gelu', { skip }, () => assertLayer('gelu', 0));
test('MultiheadAttention: self-attention output and gradients equal torch.nn.MultiheadAttention(batch_first)', { skip }, () => assertLayer('attention', 4));
test('MLPBlock: output and gradients equal torchvision MLPBlock', { skip }, () => assertLayer('mlp', 4));
test('resizePositionEmbedding: equals torchvision interpolate_embeddings (bicubic, align_corners), with its gradient', { skip }, () => assertLayer('resize', 0));
test('VisionTransformer: logits and the gradients of every parameter and the input equal torchvision', { skip }, () => {
  const n = tidy(() => new VisionTransformer(SMALL, { numClasses: CLASSES }));
  const count = n.parameters().length;
  n.dispose();
  assertLayer('vit', count);
});
test('VisionTransformer at 48 px (embeddings resized on the fly) equals torchvision made for 48 with interpolate_embeddings', { skip }, () => {
  const r = result.vit48!;
  console.log(`vit48: ${JSON.stringify(r)}`);
  assert.ok(r.scale! > 0.1);
  assert.ok(r.y! <= TOL, `logits differ by ${r.y}`);
});

test('ViT training steps leak no tensors', () => {
  manualSeed(3);
  const m = new VisionTransformer(SMALL, { numClasses: CLASSES });
  const step = () =>
    tidy(() => {
      m.zeroGrad();
      m.forward(randn([2, 3, 32, 32])).pow(2).mean().backward();
    });
  step();
  const before = memory().liveTensors;
  for (let i = 0; i < 5; i++) step();
  m.zeroGrad();
  const after = memory().liveTensors;
  m.dispose();
  assert.ok(after <= before, `live tensors grew from ${before} to ${after}`);
});

test('VisionTransformer refuses an input that is not a square multiple of the patch, in one line', () => {
  const m = new VisionTransformer(SMALL, { numClasses: CLASSES });
  assert.throws(() => tidy(() => m.forward(randn([1, 3, 30, 30]))), /multiple of the patch 8/);
  assert.throws(() => new MultiheadAttention(16, 5), /multiple of numHeads/);
  m.dispose();
});
