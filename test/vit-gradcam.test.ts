// Grad-CAM of a ViT: the map from autograd against one built from central finite differences of the
// class logit with respect to the patch tokens entering the last encoder block, in float64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn, tensor, tidy, noGrad, manualSeed, memory } from '../src/tensor/index.js';
import { VisionTransformer, type ViTConfig } from '../src/models/index.js';
import { cam, gradCam, hasCam } from '../src/eval/cam.js';
import { assertClose } from './helpers/assert.js';

const SMALL: ViTConfig = { patch: 8, dim: 16, depth: 2, heads: 2, mlpDim: 32, imageSize: 32 };

function smallVit(): VisionTransformer {
  manualSeed(7);
  const m = new VisionTransformer(SMALL, { numClasses: 5 }).toDtype('float64');
  // The class token and head start at zero (torchvision's init): randomise so every gradient is alive.
  noGrad(() => {
    for (const p of m.parameters()) p.normal_(0, 0.3);
  });
  m.eval();
  return m;
}

test('ViT: the residual stream split at any block composes back to forwardFeatures', () => {
  const m = smallVit();
  tidy(() => {
    const x = randn([2, 3, 32, 32], { dtype: 'float64' });
    const whole = m.forwardFeatures(x).toNumbers();
    for (let k = 0; k <= SMALL.depth; k++) assertClose(m.featuresFrom(m.tokensAt(x, k), k), whole, { atol: 1e-12 }, `split at block ${k}`);
    assert.throws(() => m.tokensAt(x, SMALL.depth + 1), /blocks 0\.\.3 out of range for 2 blocks/);
  });
  m.dispose();
});

test('ViT Grad-CAM equals the map built from finite differences of the class logit (float64), and has no CAM', () => {
  const m = smallVit();
  const before = memory().liveTensors;
  tidy(() => {
    const x = randn([2, 3, 32, 32], { dtype: 'float64' });
    const classes = [1, 3];
    const maps = gradCam(m, x, classes);
    const g = 32 / SMALL.patch;
    assert.deepEqual(maps.shape, [2, g, g]);

    // Independent: d y_c / d T[i, 1 + p, d] by central differences on the tokens entering the last block.
    const k = SMALL.depth - 1;
    const t = noGrad(() => m.tokensAt(x, k));
    const tokens = t.toNumbers();
    const [n, s, dim] = t.shape as [number, number, number];
    const logit = (u: number[]): number[] =>
      noGrad(() => tidy(() => {
        const y = m.forwardHead(m.featuresFrom(tensor(Float64Array.from(u), t.shape, { dtype: 'float64' }), k)).toNumbers();
        return classes.map((c, i) => y[i * 5 + c]!);
      }));
    const h = 1e-5;
    const grad = new Float64Array(n * s * dim);
    for (let p = 1; p < s; p++) {
      for (let d = 0; d < dim; d++) {
        const plus = tokens.slice();
        const minus = tokens.slice();
        for (let i = 0; i < n; i++) {
          plus[(i * s + p) * dim + d]! += h;
          minus[(i * s + p) * dim + d]! -= h;
        }
        const yp = logit(plus);
        const ym = logit(minus);
        for (let i = 0; i < n; i++) grad[(i * s + p) * dim + d] = (yp[i]! - ym[i]!) / (2 * h);
      }
    }
    const expected: number[] = [];
    for (let i = 0; i < n; i++) {
      const a = new Float64Array(dim); // a_k: the mean over the patch grid of the gradient
      for (let p = 1; p < s; p++) for (let d = 0; d < dim; d++) a[d]! += grad[(i * s + p) * dim + d]! / (s - 1);
      for (let p = 1; p < s; p++) {
        let v = 0;
        for (let d = 0; d < dim; d++) v += a[d]! * tokens[(i * s + p) * dim + d]!;
        expected.push(Math.max(0, v)); // patch p - 1 is grid cell (row, col) = divmod(p - 1, g)
      }
    }
    assert.ok(Math.max(...expected) > 1e-3, 'the finite-difference map is not all zero');
    assertClose(maps, expected, { atol: 1e-7, rtol: 1e-6 }, 'Grad-CAM vs finite differences');
    assert.ok(maps.sub(gradCam(m, x, [0, 2])).abs().sum().item() > 0, 'another class gives another map');
    for (const p of m.parameters()) assert.equal(p.grad, null, 'parameter gradients untouched');
    assert.equal(hasCam(m), false);
    assert.throws(() => cam(m, x, classes), /a ViT pools its class token: use Grad-CAM/);
  });
  assert.equal(memory().liveTensors, before, 'no tensors leaked');
  m.dispose();
});
