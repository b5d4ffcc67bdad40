// The few-rows convolution (native/src/few-rows-conv.cc): a dense convolution over few output
// pixels as one pass over its packed weight. Checked against ATen's conv2d on each loop the CPU
// has (AVX-512, AVX2, the baseline), on geometries that reach every branch (im2col or not,
// padding, stride, dilation, output channels past a whole panel, rows past one register block),
// and through the ResNet trunk against the unfolded model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { conv2d, manualSeed, noGrad, randn, tidy, type Tensor } from '../src/tensor/index.js';
import { InferenceConv2d, fewRowsIsa, fewRowsLimits, fewRowsRuns, type FewRowsIsa } from '../src/infer/index.js';
import { plannedNetwork } from './helpers/random-decomposition.js';
import { assertMemoryFlat } from './helpers/assert.js';
import type { ConvGeometry } from './helpers/conv-geometry.js';

function maxRelDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().amax().item() / Math.max(1, b.abs().amax().item()));
}

/** Runs f with the few-rows bounds (and loop) set, putting the previous ones back after. */
function withFewRows<T>(limits: Parameters<typeof fewRowsLimits>[0], isa: FewRowsIsa | undefined, f: () => T): T {
  const before = fewRowsLimits(limits);
  const isaBefore = isa ? fewRowsIsa(isa) : undefined;
  try {
    return f();
  } finally {
    fewRowsLimits(before);
    if (isaBefore) fewRowsIsa(isaBefore);
  }
}
const EVERY = { maxRows: Infinity, minWeight: 0 };

type Geometry = ConvGeometry;
const GEOMETRIES: Geometry[] = [
  { name: '3x3 on a 2x2 map, 40 outputs (a part panel)', batch: 1, cin: 64, cout: 40, hw: [2, 2], k: [3, 3], stride: [1, 1], padding: [1, 1], dilation: [1, 1] },
  { name: '3x3 stride 2 on 5x5, batch 3 (27 rows: whole and part register blocks)', batch: 3, cin: 16, cout: 64, hw: [5, 5], k: [3, 3], stride: [2, 2], padding: [1, 1], dilation: [1, 1] },
  { name: '1x1 stride 1 (read in place, no patches)', batch: 2, cin: 48, cout: 33, hw: [3, 3], k: [1, 1], stride: [1, 1], padding: [0, 0], dilation: [1, 1] },
  { name: '1x1 stride 2', batch: 1, cin: 24, cout: 70, hw: [4, 4], k: [1, 1], stride: [2, 2], padding: [0, 0], dilation: [1, 1] },
  { name: '3x2 window, stride (1, 2), padding (2, 0), dilation (2, 1)', batch: 2, cin: 8, cout: 96, hw: [3, 5], k: [3, 2], stride: [1, 2], padding: [2, 0], dilation: [2, 1] },
];

for (const isa of ['avx512', 'avx2', 'baseline'] as const) {
  test(`few-rows convolution (${isa} loop, or the CPU's if narrower) equals conv2d within 1e-5 on every geometry, with and without ReLU`, () => {
    manualSeed(3);
    withFewRows(EVERY, isa, () => {
      for (const [i, g] of GEOMETRIES.entries()) {
        const relu = i % 2 === 0;
        tidy(() => {
          const w = randn([g.cout, g.cin, ...g.k]).mul(0.2);
          const b = randn([g.cout]);
          const layer = new InferenceConv2d({ weight: w, bias: b }, { stride: g.stride, padding: g.padding, dilation: g.dilation, groups: 1 }, relu);
          for (const cl of [true, false]) {
            const x = randn([g.batch, g.cin, ...g.hw]);
            const xi = cl ? x.contiguous('channels_last') : x;
            let ref = conv2d(x, w, b, { stride: g.stride, padding: g.padding, dilation: g.dilation });
            if (relu) ref = ref.relu();
            const runs = fewRowsRuns();
            const got = noGrad(() => layer.forward(xi));
            assert.equal(fewRowsRuns(), runs + 1, `${g.name} (${cl ? 'channels_last' : 'NCHW'}): the few-rows pass ran`);
            assert.deepEqual(got.shape, ref.shape, g.name);
            assert.ok(maxRelDiff(got, ref) <= 1e-5, `${g.name} (${cl ? 'channels_last' : 'NCHW'}): max diff ${maxRelDiff(got, ref)}`);
          }
          layer.dispose();
        });
      }
    });
  });
}

test('few-rows convolution is not taken past its bounds, for grouped convolutions, or for input that needs a gradient', () => {
  manualSeed(4);
  tidy(() => {
    const dense = new InferenceConv2d({ weight: randn([32, 16, 3, 3]), bias: randn([32]) }, { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 }, false);
    const grouped = new InferenceConv2d({ weight: randn([32, 8, 3, 3]), bias: randn([32]) }, { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 2 }, false);
    const x = randn([1, 16, 2, 2]);
    const runs = fewRowsRuns();
    // Default bounds: 4 rows, but 4,608 weights (under 2^18).
    noGrad(() => dense.forward(x));
    withFewRows({ maxRows: 0, minWeight: 0 }, undefined, () => noGrad(() => dense.forward(x)));
    withFewRows({ maxRows: 3, minWeight: 0 }, undefined, () => noGrad(() => dense.forward(x)));
    withFewRows(EVERY, undefined, () => noGrad(() => grouped.forward(x)));
    const xg = randn([1, 16, 2, 2], { requiresGrad: true });
    withFewRows(EVERY, undefined, () => dense.forward(xg));
    assert.equal(fewRowsRuns(), runs, 'no convolution went through the few-rows pass');
    withFewRows({ maxRows: 4, minWeight: 16 * 9 * 32 }, undefined, () => noGrad(() => dense.forward(x)));
    assert.equal(fewRowsRuns(), runs + 1, 'at its bounds it is taken');
    // A window larger than the input (3x3, no padding, stride 2 on 2x2): no output pixel; refused
    // in one line as conv2d refuses it (oneDNN's pre-packed run had answered a 1x1 output).
    const unpadded = new InferenceConv2d({ weight: randn([32, 16, 3, 3]), bias: randn([32]) }, { stride: [2, 2], padding: [0, 0], dilation: [1, 1], groups: 1 }, false);
    for (const xi of [x, x.contiguous('channels_last')]) {
      assert.throws(() => withFewRows(EVERY, undefined, () => noGrad(() => unpadded.forward(xi))), /Kernel size can't be greater than actual input size/);
    }
    assert.equal(fewRowsRuns(), runs + 1, 'a window past the input is not taken');
    unpadded.dispose();
    dense.dispose();
    grouped.dispose();
  });
});

test('ResNet-18 trunk at batch 1 and 2 takes the few-rows pass for its deep blocks and equals the unfolded model within 1e-5, with memory flat', () => {
  const { model, plan } = plannedNetwork('resnet18', 5, 5);
  for (const isa of ['avx512', 'avx2'] as const) {
    for (const batch of [1, 2]) {
      tidy(() => {
        const x = randn([batch, 3, 64, 64]).contiguous('channels_last');
        const ref = noGrad(() => model.forward(x));
        const runs = fewRowsRuns();
        const got = withFewRows({}, isa, () => plan.run(() => model.forward(x)));
        // 64 px: layer3 has 4x4 maps (16 rows at batch 1), layer4 2x2; at batch 2 only layer4 is few (8 rows).
        const blocks = batch === 1 ? 4 : 2;
        const convs = blocks * 2 + 2; // two per block, and layer3's and layer4's downsample
        assert.equal(fewRowsRuns() - runs, batch === 1 ? convs : 5, `batch ${batch}: convolutions through the few-rows pass`);
        assert.ok(maxRelDiff(got, ref) <= 1e-5, `${isa} batch ${batch}: max diff ${maxRelDiff(got, ref)}`);
        const off = withFewRows({ maxRows: 0 }, undefined, () => plan.run(() => model.forward(x)));
        assert.ok(maxRelDiff(got, off) <= 1e-5, `${isa} batch ${batch}: equal to oneDNN's blocks`);
      });
    }
  }
  const x = randn([1, 3, 64, 64]).contiguous('channels_last');
  assertMemoryFlat(() => tidy(() => void plan.run(() => model.forward(x))), 4);
  x.dispose();
  plan.dispose();
  model.dispose();
});

test('fewRowsLimits and fewRowsIsa refuse bad values in one line and change nothing', () => {
  const before = fewRowsLimits();
  assert.throws(() => fewRowsLimits({ maxRows: -1 }), /^UserError: fewRowsLimits: maxRows must be a whole number >= 0, got -1$/);
  assert.throws(() => fewRowsLimits({ minWeight: 1.5 }), /minWeight must be a whole number >= 0, got 1.5/);
  assert.throws(() => fewRowsIsa('sse' as FewRowsIsa), /fewRowsIsa: the instruction set must be avx512, avx2 or baseline, got sse/);
  assert.deepEqual(fewRowsLimits(), before);
  assert.deepEqual(before, { maxRows: 16, minWeight: 2 ** 18 });
});
