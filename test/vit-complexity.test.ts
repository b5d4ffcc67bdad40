// Parameters and FLOPs of the ViTs, attention included, against the formula and torchvision's
// published figures (vit_b_16: 86,567,656 parameters, 17.56 GFLOPS (multiply-adds) at 224).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createModel, modelDefaults, listModels } from '../src/models/index.js';
import { traceLayers, complexity } from '../src/eval/complexity.js';

/** Multiply-adds of one image through a ViT, counted by hand (see eval/complexity.ts for the rules). */
function vitMacs(o: { side: number; patch: number; dim: number; depth: number; mlp: number; classes: number }): number {
  const g = o.side / o.patch;
  const l = 1 + g * g;
  const d = o.dim;
  const patchEmbed = g * g * d * 3 * o.patch * o.patch;
  const layerNorm = 2 * l * d;
  const attention = 3 * l * d * d + 2 * l * l * d + l * d * d;
  const mlp = 2 * l * d * o.mlp + l * o.mlp;
  return patchEmbed + o.depth * (2 * layerNorm + attention + mlp) + layerNorm + d * o.classes;
}

test('vit_b_16: parameters equal torchvision\'s count; FLOPs equal the formula and torchvision\'s 17.56 G', () => {
  const m = createModel('vit_b_16');
  try {
    assert.equal(m.numParameters(), 86_567_656);
    const calls = traceLayers(m, [3, 224, 224]);
    const total = calls.reduce((s, c) => s + c.macs, 0);
    assert.equal(total, vitMacs({ side: 224, patch: 16, dim: 768, depth: 12, mlp: 3072, classes: 1000 }));
    const attn = calls.filter((c) => c.kind === 'attention');
    assert.equal(attn.length, 12);
    assert.equal(attn[0]!.macs, 3 * 197 * 768 * 768 + 2 * 197 * 197 * 768, 'in-projection and both attention matmuls');
    // torchvision's table counts the matmuls only; ours adds LayerNorm and GELU (well under 1%).
    assert.ok(Math.abs(total / 17.56e9 - 1) < 0.01, `vit_b_16 at 224: ${total / 1e9} G`);
  } finally {
    m.dispose();
  }
});

test('vit_tiny_p8 at 64 px: FLOPs equal the formula; lorkd params counts it', () => {
  const m = createModel('vit_tiny_p8', { numClasses: 2 });
  try {
    const total = traceLayers(m, [3, 64, 64]).reduce((s, c) => s + c.macs, 0);
    assert.equal(total, vitMacs({ side: 64, patch: 8, dim: 192, depth: 12, mlp: 768, classes: 2 }));
  } finally {
    m.dispose();
  }
  const r = complexity({ model: 'vit_tiny_p8', tasks: 1, rank: 8, input: 64 });
  assert.equal(r.flops_deployment, vitMacs({ side: 64, patch: 8, dim: 192, depth: 12, mlp: 768, classes: 2 }));
  assert.ok(r.params_deployment > 5e6 && r.params_deployment < 6e6, `${r.params_deployment}`);
});

test('the registry records every model\'s default preprocessing', () => {
  for (const name of listModels()) {
    const d = modelDefaults(name);
    assert.ok(Number.isInteger(d.input) && d.input > 0 && d.mean.length === 3 && d.std.length === 3 && d.resize === 'bilinear', name);
  }
  assert.deepEqual(modelDefaults('vit_b_16'), { input: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], resize: 'bilinear' });
  assert.equal(modelDefaults('vit_tiny_p8').input, 64);
  assert.throws(() => modelDefaults('vit_x'), /unknown model "vit_x"/);
});
