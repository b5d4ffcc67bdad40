// Analysis estimators: MIG on synthetic latents with a known answer, linear CKA against its
// formula and its invariances, Grad-CAM (autograd) against CAM (head weights) for our GAP + linear
// networks, and the PNG overlay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import { tensor, tidy, manualSeed, randn, memory } from '../src/tensor/index.js';
import { createModel } from '../src/models/registry.js';
import { discretise, entropy, mig, mutualInformation } from '../src/eval/mig.js';
import { linearCka, ckaMatrix } from '../src/eval/cka.js';
import { cam, featureMaps, gradCam, normaliseMaps, overlay, panelsPng, jet } from '../src/eval/cam.js';
import { lcg } from './helpers/random.js';
import { assertClose } from './helpers/assert.js';

/** n samples of two independent, balanced factors: task in 0..2, class in 0..3. */
function factors(n: number): { task: Int32Array; cls: Int32Array } {
  const task = Int32Array.from({ length: n }, (_, i) => i % 3);
  const cls = Int32Array.from({ length: n }, (_, i) => Math.floor(i / 3) % 4);
  return { task, cls };
}

test('MIG: a perfectly disentangled code gives 1, a shuffled one about 0', () => {
  const n = 1200;
  const { task, cls } = factors(n);
  const r = lcg(1);
  // latent 0 encodes the task, latent 1 the class (any monotone map), latents 2..4 are noise.
  const d = 5;
  const z = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    z[i * d] = 3 * task[i]! + 0.1;
    z[i * d + 1] = Math.exp(cls[i]!);
    for (let j = 2; j < d; j++) z[i * d + j] = r();
  }
  // Without noise latents the gap is exactly 1 (the factors are independent and balanced).
  const exact = mig(Float64Array.from({ length: n * 2 }, (_, k) => z[Math.floor(k / 2) * d + (k % 2)]!), n, 2, { task, class: cls });
  assertClose([exact.mig!], [1], { atol: 1e-9 }, 'MIG of the disentangled code');
  // Noise latents carry only the plug-in estimator's small positive bias.
  const good = mig(z, n, d, { task, class: cls });
  assert.ok(good.mig! > 0.97 && good.mig! <= 1, `MIG with noise latents is ${good.mig}`);
  assert.equal(good.factors[0]!.top.latent, 0);
  assert.equal(good.factors[1]!.top.latent, 1);
  assertClose([good.factors[0]!.entropy, good.factors[1]!.entropy], [Math.log(3), Math.log(4)], { atol: 1e-12 }, 'factor entropies');

  // Shuffle each latent's column independently: no latent carries a factor any more.
  const shuffled = new Float64Array(n * d);
  for (let j = 0; j < d; j++) {
    const rr = lcg(100 + j);
    const p = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const k = Math.floor(rr() * (i + 1));
      [p[i], p[k]] = [p[k]!, p[i]!];
    }
    for (let i = 0; i < n; i++) shuffled[i * d + j] = z[p[i]! * d + j]!;
  }
  const bad = mig(shuffled, n, d, { task, class: cls });
  assert.ok(bad.mig! >= 0 && bad.mig! < 0.05, `MIG of the shuffled code is ${bad.mig}`);

  // An entangled code: one latent carries both factors, so each factor's top latent is the same
  // and the gap is well below 1.
  const both = new Float64Array(n * 2);
  for (let i = 0; i < n; i++) {
    both[i * 2] = task[i]! * 4 + cls[i]!;
    both[i * 2 + 1] = task[i]! * 4 + cls[i]! + 0.5;
  }
  const ent = mig(both, n, 2, { task, class: cls });
  assert.ok(ent.mig! < 0.1, `two copies of one entangled latent give MIG ${ent.mig}`);
});

test('MIG pieces: MI(v, v) = H(v), independent variables have MI 0, 20 equal-width bins', () => {
  const v = Int32Array.from([0, 0, 1, 2, 2, 2, 3, 1]);
  assertClose([mutualInformation(v, v)], [entropy(v)], { atol: 1e-12 });
  // H by hand: counts 2, 2, 3, 1 of 8.
  const h = -[2, 2, 3, 1].reduce((a, c) => a + (c / 8) * Math.log(c / 8), 0);
  assertClose([entropy(v)], [h], { atol: 1e-12 });
  const a = Int32Array.from({ length: 16 }, (_, i) => i % 2);
  const b = Int32Array.from({ length: 16 }, (_, i) => Math.floor(i / 2) % 2);
  assertClose([mutualInformation(a, b)], [0], { atol: 1e-12 });
  // Bins are [lo + k w, lo + (k+1) w) over [min, max]; the max goes to the last bin.
  const x = [0, ...Array.from({ length: 20 }, (_, k) => (k + 0.5) / 20), 1];
  const bins = discretise(x, 20);
  assert.deepEqual(Array.from(bins), [0, ...Array.from({ length: 20 }, (_, k) => k), 19]);
  assert.deepEqual(Array.from(discretise([2, 2, 2])), [0, 0, 0]);
  assert.throws(() => mig([1, 2, 3], 3, 1, { t: [0, 1, -1] }), /not a class index/);
});

/** Plain-JS linear CKA, straight from the formula ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), columns centred. */
function ckaFormula(x: number[][], y: number[][]): number {
  const centre = (m: number[][]) => {
    const mean = m[0]!.map((_, j) => m.reduce((a, r) => a + r[j]!, 0) / m.length);
    return m.map((r) => r.map((v, j) => v - mean[j]!));
  };
  const X = centre(x);
  const Y = centre(y);
  const fro2 = (A: number[][], B: number[][]) => {
    // ||A^T B||_F^2
    let s = 0;
    for (let i = 0; i < A[0]!.length; i++) {
      for (let j = 0; j < B[0]!.length; j++) {
        let d = 0;
        for (let k = 0; k < A.length; k++) d += A[k]![i]! * B[k]![j]!;
        s += d * d;
      }
    }
    return s;
  };
  return fro2(Y, X) / Math.sqrt(fro2(X, X) * fro2(Y, Y));
}

const matrix = (n: number, p: number, seed: number): number[][] => {
  const r = lcg(seed);
  return Array.from({ length: n }, () => Array.from({ length: p }, () => r() * 2 - 1));
};
const T = (m: number[][]) => tensor(m.flat(), [m.length, m[0]!.length], { dtype: 'float64' });

/** A random p x p orthogonal matrix (Gram-Schmidt on random columns). */
function orthogonal(p: number, seed: number): number[][] {
  const cols = matrix(p, p, seed);
  const q: number[][] = [];
  for (const c of cols) {
    const v = c.slice();
    for (const u of q) {
      const d = u.reduce((a, x, i) => a + x * v[i]!, 0);
      for (let i = 0; i < p; i++) v[i]! -= d * u[i]!;
    }
    const norm = Math.hypot(...v);
    q.push(v.map((x) => x / norm));
  }
  return Array.from({ length: p }, (_, i) => q.map((u) => u[i]!)); // columns are q
}
const matmul = (a: number[][], b: number[][]) => a.map((r) => b[0]!.map((_, j) => r.reduce((s, v, k) => s + v * b[k]![j]!, 0)));

test('linear CKA: equals the formula, invariant to orthogonal transforms and isotropic scaling, not to anisotropic scaling', () => {
  const before = memory().liveTensors;
  const x = matrix(40, 6, 2);
  const y = matrix(40, 9, 3).map((r, i) => r.map((v, j) => v + (j < 6 ? 0.8 * x[i]![j]! : 0)));
  const c = tidy(() => linearCka(T(x), T(y)));
  assertClose([c], [ckaFormula(x, y)], { atol: 1e-12 }, 'CKA vs formula');
  assert.ok(c > 0.2 && c < 1, `related features give CKA ${c}`);
  const q = orthogonal(6, 4);
  assertClose([tidy(() => linearCka(T(matmul(x, q)), T(y)))], [c], { atol: 1e-10 }, 'orthogonal transform');
  assertClose([tidy(() => linearCka(T(x.map((r) => r.map((v) => 7.5 * v))), T(y)))], [c], { atol: 1e-10 }, 'isotropic scaling');
  assertClose([tidy(() => linearCka(T(x.map((r) => r.map((v) => v + 3))), T(y)))], [c], { atol: 1e-10 }, 'translation');
  const aniso = tidy(() => linearCka(T(x.map((r) => r.map((v, j) => (j === 0 ? 20 * v : v)))), T(y)));
  assert.ok(Math.abs(aniso - c) > 1e-3, `anisotropic scaling must change CKA (${aniso} vs ${c})`);
  assertClose([tidy(() => linearCka(T(x), T(x)))], [1], { atol: 1e-12 }, 'CKA(X, X)');
  const m = tidy(() => ckaMatrix([T(x), T(y), T(matmul(x, q))]));
  assertClose(m.flat(), [1, c, 1, c, 1, c, 1, c, 1], { atol: 1e-10 }, 'CKA matrix');
  assert.equal(memory().liveTensors, before, 'no tensors leaked');
});

for (const arch of ['shufflenet_v2_x0_5', 'resnet18']) {
  test(`Grad-CAM by autograd equals CAM from the head weights (${arch}: GAP + linear)`, () => {
    const before = memory().liveTensors;
    manualSeed(3);
    const model = createModel(arch, { numClasses: 5 });
    model.eval();
    tidy(() => {
      const x = randn([2, 3, 96, 96]);
      const a = featureMaps(model, x);
      assertClose(a.mean([2, 3]), model.forwardFeatures(x).toNumbers(), { atol: 1e-5 }, 'pooled maps = forwardFeatures');
      const classes = [0, 3];
      const g = gradCam(model, x, classes);
      const c = cam(model, x, classes);
      const hw = a.shape[2]! * a.shape[3]!;
      // a_k = w_ck / (h w): Grad-CAM = CAM / (h w) before normalisation.
      assertClose(g.mul(hw), c.toNumbers(), { atol: 1e-4, rtol: 1e-4 }, 'Grad-CAM x hw vs CAM');
      const gn = normaliseMaps(g, 24, 24);
      const cn = normaliseMaps(c, 24, 24);
      gn.forEach((m, i) => assertClose(m, cn[i]!, { atol: 1e-5 }, `normalised map ${i}`));
      // Different classes give different maps (the test could see a constant).
      assert.ok(c.sum().item() > 0, 'maps are not all zero');
      assert.ok(c.sub(cam(model, x, [1, 2])).abs().sum().item() > 0, 'another class gives another map');
      assert.ok(hw > 1, `the maps have ${hw} positions`);
      assert.equal(model.fc.weight.grad, null, 'parameter gradients untouched');
    });
    model.dispose();
    assert.equal(memory().liveTensors, before, 'no tensors leaked');
  });
}

test('overlay and side-by-side PNG: sizes, an unblended image panel, the jet colours', () => {
  const h = 4;
  const w = 3;
  const img = Uint8Array.from({ length: 3 * h * w }, (_, i) => (i * 7) % 256);
  const plain = overlay(img, null, h, w);
  const heat = overlay(img, new Float32Array(h * w).fill(1), h, w, 0.5);
  assert.deepEqual([plain[0], plain[1], plain[2], plain[3]], [img[0], img[h * w], img[2 * h * w], 255]);
  assert.deepEqual(jet(1), [128, 0, 0]);
  assert.deepEqual(jet(0), [0, 0, 128]);
  assert.equal(heat[0], Math.round(0.5 * img[0]! + 0.5 * 128));
  const png = PNG.sync.read(panelsPng([plain, heat], h, w, 2));
  assert.equal(png.width, 2 * w + 2);
  assert.equal(png.height, h);
  assert.deepEqual([...png.data.subarray(0, 4)], [...plain.subarray(0, 4)]);
  const x0 = (w + 2) * 4;
  assert.deepEqual([...png.data.subarray(x0, x0 + 4)], [...heat.subarray(0, 4)]);
  assert.deepEqual([...png.data.subarray(w * 4, w * 4 + 4)], [255, 255, 255, 255], 'gap is white');
});
