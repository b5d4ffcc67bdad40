// The direct convolution (native/src/direct-conv.cc): lorkd's own loop on channels_last tensors,
// with the bias, the residual sum and the ReLU in its store, used by the ResNet trunk on small
// stages. Checked against ATen's conv2d on geometries that reach every branch (taps in the
// padding on every side, strips cut across a row, a single input-channel block and several, a part
// block, a part panel of output channels, stride, dilation, a first layer's 7x7 over 3 channels,
// batches), and through the trunk against the unfolded model and oneDNN's chain. Skipped on a CPU
// without AVX-512, where the trunk keeps oneDNN's chain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { conv2d, manualSeed, noGrad, randn, tidy, Tensor, TorchError } from '../src/tensor/index.js';
import { N } from '../src/tensor/ops-native.js';
import type { NativeHandle } from '../src/tensor/native.js';
import { directConv, directConvRuns } from '../src/infer/index.js';
import { plannedNetwork } from './helpers/random-decomposition.js';
import { assertMemoryFlat } from './helpers/assert.js';
import type { ConvGeometry } from './helpers/conv-geometry.js';

const skip = directConv().enabled ? false : 'this CPU has no AVX-512: the trunk keeps oneDNN';

function maxRelDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().amax().item() / Math.max(1, b.abs().amax().item()));
}

/** Runs f with the direct loop's settings set, putting the previous ones back after. */
function withDirect<T>(set: Parameters<typeof directConv>[0], f: () => T): T {
  const before = directConv(set);
  try {
    return f();
  } finally {
    directConv(before);
  }
}

type Geometry = ConvGeometry;
const g = (name: string, batch: number, cin: number, cout: number, hw: [number, number], k: [number, number], stride: [number, number], padding: [number, number], dilation: [number, number] = [1, 1]): Geometry =>
  ({ name, batch, cin, cout, hw, k, stride, padding, dilation });
const GEOMETRIES: Geometry[] = [
  g('3x3 on 9x13, 64 -> 64 (4 blocks, strips of 6 and less)', 1, 64, 64, [9, 13], [3, 3], [1, 1], [1, 1]),
  g('3x3 stride 2 on 14x14, batch 2, 40 -> 80 (a part block, a part panel)', 2, 40, 80, [14, 14], [3, 3], [2, 2], [1, 1]),
  g('7x7 stride 2 padding 3 on 23x29, 3 -> 64 (a first layer: taps merged per window row)', 2, 3, 64, [23, 29], [7, 7], [2, 2], [3, 3]),
  g('1x1 stride 2, 24 -> 48', 1, 24, 48, [7, 6], [1, 1], [2, 2], [0, 0]),
  g('3x3 dilation 2 padding 2 on 6x5, 16 -> 16', 3, 16, 16, [6, 5], [3, 3], [1, 1], [2, 2], [2, 2]),
  g('3x2 window, stride (1, 2), padding (2, 0), dilation (2, 1), 20 -> 32', 2, 20, 32, [5, 9], [3, 2], [1, 2], [2, 0], [2, 1]),
  g('3x3 on a 1x1 map (every tap but the centre in the padding)', 1, 32, 128, [1, 1], [3, 3], [1, 1], [1, 1]),
];

test('direct convolution equals conv2d within 1e-5 on every geometry, with and without the residual and the ReLU', { skip }, () => {
  manualSeed(11);
  for (const [i, geo] of GEOMETRIES.entries()) {
    tidy(() => {
      const w = randn([geo.cout, geo.cin, ...geo.k]).mul(0.2);
      const b = randn([geo.cout]);
      const packed = N.directConvPrepare(w.handle, b.handle, geo.stride, geo.padding, geo.dilation);
      assert.notEqual(packed, null, `${geo.name}: packed`);
      for (const [residual, relu] of [[false, false], [true, true], [i % 2 === 0, i % 2 === 1]] as const) {
        for (const cl of [true, false]) {
          const x = randn([geo.batch, geo.cin, ...geo.hw]);
          let ref = conv2d(x, w, b, { stride: geo.stride, padding: geo.padding, dilation: geo.dilation });
          const res = residual ? randn(ref.shape) : null;
          if (res) ref = ref.add(res);
          if (relu) ref = ref.relu();
          const runs = directConvRuns();
          const got = Tensor.wrap(N.directConvApply(packed, (cl ? x.contiguous('channels_last') : x).handle, res?.handle ?? null, relu) as NativeHandle);
          assert.equal(directConvRuns(), runs + 1, `${geo.name}: the direct loop ran`);
          assert.deepEqual(got.shape, ref.shape, geo.name);
          const d = maxRelDiff(got, ref);
          assert.ok(d <= 1e-5, `${geo.name} (residual ${residual}, relu ${relu}, ${cl ? 'channels_last' : 'NCHW'}): max diff ${d}`);
        }
      }
    });
  }
});

test('direct convolution refuses a weight it does not pack, and bad input, in one line; nothing leaks', { skip }, () => {
  manualSeed(12);
  tidy(() => {
    assert.equal(N.directConvPrepare(randn([40, 8, 3, 3]).handle, randn([40]).handle, [1, 1], [1, 1], [1, 1]), null, 'Cout 40 is not a multiple of 16');
    const packed = N.directConvPrepare(randn([32, 8, 3, 3]).handle, randn([32]).handle, [1, 1], [1, 1], [1, 1]);
    const bad = (f: () => unknown, re: RegExp) => assert.throws(f, (e: Error) => e instanceof TorchError && re.test(e.message) && !e.message.includes('\n'));
    bad(() => N.directConvApply(packed, randn([1, 9, 5, 5]).handle, null, false), /directConvRun: the input must be float32 \(N, 8, H, W\)/);
    bad(() => N.directConvApply(packed, randn([1, 8, 5, 5]).handle, randn([1, 32, 4, 4]).handle, false), /the residual must have the output's shape/);
    bad(() => N.directConvApply({}, randn([1, 8, 5, 5]).handle, null, false), /not a prepared convolution/);
    const tiny = N.directConvPrepare(randn([16, 8, 3, 3]).handle, randn([16]).handle, [1, 1], [0, 0], [1, 1]);
    bad(() => N.directConvApply(tiny, randn([1, 8, 2, 2]).handle, null, false), /smaller than the kernel/);
    bad(() => N.directConvPrepare(randn([16, 8, 3]).handle, randn([16]).handle, [1, 1], [0, 0], [1, 1]), /4-d float32 CPU tensor/);
    const x = randn([2, 8, 6, 6]).contiguous('channels_last');
    assertMemoryFlat(() => tidy(() => void Tensor.wrap(N.directConvApply(packed, x.handle, null, true) as NativeHandle)), 5);
  });
});

test('ResNet-18 trunk takes the direct loop on small stages and equals the unfolded model and oneDNN\'s chain within 1e-5, with memory flat', { skip }, () => {
  const { model, plan } = plannedNetwork('resnet18', 5, 13);
  for (const [batch, size] of [[1, 64], [2, 32], [1, 45]] as const) {
    tidy(() => {
      const x = randn([batch, 3, size, size]).contiguous('channels_last');
      const ref = noGrad(() => model.forward(x));
      const runs = directConvRuns();
      const got = plan.run(() => model.forward(x));
      assert.ok(directConvRuns() > runs, `batch ${batch} at ${size} px: the direct loop ran`);
      assert.ok(maxRelDiff(got, ref) <= 1e-5, `batch ${batch} at ${size} px: max diff to the unfolded model ${maxRelDiff(got, ref)}`);
      const every = directConvRuns();
      const all = withDirect({ maxMacs: Infinity }, () => plan.run(() => model.forward(x)));
      assert.ok(directConvRuns() > every, 'every stage through the loop');
      assert.ok(maxRelDiff(all, ref) <= 1e-5, `batch ${batch}: every stage direct, max diff ${maxRelDiff(all, ref)}`);
      const none = directConvRuns();
      const off = withDirect({ enabled: false }, () => plan.run(() => model.forward(x)));
      assert.equal(directConvRuns(), none, 'switched off: oneDNN\'s chain');
      assert.ok(maxRelDiff(got, off) <= 1e-5, `batch ${batch}: equal to oneDNN's chain`);
    });
  }
  const x = randn([1, 3, 64, 64]).contiguous('channels_last');
  assertMemoryFlat(() => tidy(() => void plan.run(() => model.forward(x))), 4);
  x.dispose();
  plan.dispose();
  model.dispose();
});

test('directConv refuses bad settings in one line and changes nothing', () => {
  const before = directConv();
  assert.throws(() => directConv({ maxMacs: -1 }), /^UserError: directConv: maxMacs must be a whole number >= 0, got -1$/);
  assert.throws(() => directConv({ enabled: 'yes' as unknown as boolean }), /directConv: enabled must be true or false, got yes/);
  assert.deepEqual(directConv(), before);
  assert.equal(before.maxMacs, 2 ** 24);
});
