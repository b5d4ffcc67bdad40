// The hand-written kernels of the inference path (native/src/infer-kernels.cc) against ATen's
// convolution, pooling and concatenation on the same input: channels_last and channel slices
// (read in place), strides and padding, NaN in pooling, one and two threads; each answers null
// (the caller's general path) where it does not apply. And ShuffleNetV2's unit as one native call
// (shuffle-unit.cc): used for every unit of a plain network and of a decomposition, refusing
// routing that does not fit with a one-line error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn, tensor, tidy, noGrad, conv2d, maxPool2d, cat, inferenceMode, memory, manualSeed, Tensor, TorchError } from '../src/tensor/index.js';
import { N } from '../src/tensor/ops-native.js';
import { channelShuffle, catShuffle, createModel } from '../src/models/index.js';
import { DecompositionModel } from '../src/lorkd/index.js';
import { Routing } from '../src/lorkd/routing.js';
import { InferencePlan, InferenceConv2d, fewRowsLimits } from '../src/infer/index.js';
import { plannedNetwork, randomizeBatchNorms, randomizeDecomposition, smallShuffleDecomposition } from './helpers/random-decomposition.js';
import { withThreads } from './helpers/threads.js';
import { preparedUnit } from './helpers/prepared-unit.js';

const maxDiff = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).abs().amax().item());
const wrapOrNull = (h: unknown): Tensor | null => (h === null ? null : Tensor.wrap(h as never));
const THREADS = [1, 2];

test('1x1 convolution kernel: equals conv2d + bias (+ ReLU) on channels_last input and on a channel slice read in place', () => {
  manualSeed(3);
  // The few-rows pass off: with it, 4 rows over 464 x 1024 weights go there instead (next test).
  const bounds = fewRowsLimits({ maxRows: 0 });
  for (const threads of THREADS) {
    withThreads(threads, () =>
      tidy(() => {
        for (const [n, c, h, w, cout] of [[1, 464, 2, 2, 1024], [2, 58, 3, 5, 58], [1, 24, 16, 16, 58], [3, 7, 1, 1, 5], [2, 16, 16, 16, 24]] as const) {
          const wt = randn([cout, c, 1, 1]);
          const b = randn([cout]);
          for (const relu of [false, true]) {
            const x = randn([n, c, h, w]).contiguous('channels_last');
            const ref = tidy(() => (relu ? conv2d(x, wt, b).relu() : conv2d(x, wt, b)));
            const got = wrapOrNull(N.pointwiseConvInfer(x.handle, wt.handle, b.handle, relu))!;
            assert.ok(got, `${[n, c, h, w, cout]} runs the kernel`);
            assert.ok(got.isContiguous('channels_last'));
            assert.ok(maxDiff(got, ref) <= 1e-4, `${[n, c, h, w, cout]} relu ${relu} ${threads}t: ${maxDiff(got, ref)}`);
            // With the (Cin, Cout) copy: read as is up to 256 rows (all of these), the same values.
            const plain = Tensor.wrap(N.pointwiseTransposed(wt.handle));
            assert.deepEqual(plain.shape, [c, cout]);
            const viaPlain = wrapOrNull(N.pointwiseConvInfer(x.handle, wt.handle, b.handle, relu, plain.handle))!;
            assert.ok(maxDiff(viaPlain, ref) <= 1e-4, `${[n, c, h, w, cout]} relu ${relu} ${threads}t, (Cin, Cout) weight: ${maxDiff(viaPlain, ref)}`);
            // The second half of a channels_last tensor of twice the channels: rows 2c apart.
            const wide = randn([n, 2 * c, h, w]).contiguous('channels_last');
            const slice = wide.narrow(1, c, c);
            const refSlice = tidy(() => conv2d(slice.contiguous(), wt, b));
            assert.ok(maxDiff(wrapOrNull(N.pointwiseConvInfer(slice.handle, wt.handle, b.handle, false))!, refSlice) <= 1e-4, 'channel slice');
            assert.ok(maxDiff(wrapOrNull(N.pointwiseConvInfer(slice.handle, wt.handle, b.handle, false, plain.handle))!, refSlice) <= 1e-4, 'channel slice, (Cin, Cout) weight');
          }
        }
      }),
    );
  }
  fewRowsLimits(bounds);
});

test('1x1 convolution kernel: null for NCHW input, a large output over many pixel rows (oneDNN is faster there), few rows over a large weight (the few-rows pass) or a weight that does not fit', () => {
  tidy(() => {
    const w = randn([16, 8, 1, 1]);
    const b = randn([16]);
    assert.equal(N.pointwiseConvInfer(randn([2, 8, 4, 4]).handle, w.handle, b.handle, false), null, 'NCHW');
    assert.equal(N.pointwiseConvInfer(randn([2, 8, 64, 64]).contiguous('channels_last').handle, w.handle, b.handle, false), null, '131,072 outputs over 8,192 rows');
    // Many outputs over few rows (ShuffleNetV2's conv5 at batch 1): the kernel, not oneDNN's pre-packed convolution.
    const wide = randn([1024, 464, 1, 1]);
    const bias = randn([1024]);
    const x = randn([1, 464, 7, 7]).contiguous('channels_last');
    const got = N.pointwiseConvInfer(x.handle, wide.handle, bias.handle, true);
    assert.notEqual(got, null, '50,176 outputs over 49 rows');
    const ref = conv2d(x, wide, bias).relu();
    const d = maxDiff(Tensor.wrap(got as never), ref);
    assert.ok(d <= 1e-3, `${d}`);
    assert.equal(N.pointwiseConvInfer(randn([1, 9, 4, 4]).contiguous('channels_last').handle, w.handle, b.handle, false), null, 'Cin 9 vs 8');
    // 4 rows over 475 Ki weights: the few-rows pass's (through convInfer), not this kernel's.
    assert.equal(N.pointwiseConvInfer(randn([1, 464, 2, 2]).contiguous('channels_last').handle, wide.handle, bias.handle, false), null, 'few rows');
  });
});

test('depthwise kernel: equals the grouped conv2d for window 3 and 5, stride 1 and 2, padding 0-2, on slices, 1 and 2 threads', () => {
  manualSeed(4);
  for (const threads of THREADS) {
    withThreads(threads, () =>
      tidy(() => {
        for (const [n, c, h, w, k, stride, pad] of [[1, 116, 8, 8, 3, 1, 1], [2, 58, 9, 7, 3, 2, 1], [1, 24, 6, 6, 5, 1, 2], [3, 5, 4, 5, 3, 2, 0]] as const) {
          const wt = randn([c, 1, k, k]);
          const b = randn([c]);
          const taps = N.depthwiseTaps(wt.handle);
          const wide = randn([n, 2 * c, h, w]).contiguous('channels_last');
          for (const x of [wide.narrow(1, 0, c), randn([n, c, h, w]).contiguous('channels_last')]) {
            for (const relu of [false, true]) {
              const conv = conv2d(x.contiguous(), wt, b, { stride, padding: pad, groups: c });
              const ref = relu ? conv.relu() : conv;
              const got = wrapOrNull(N.depthwiseConvInfer(x.handle, taps, k, k, b.handle, [stride, stride], [pad, pad], relu))!;
              assert.ok(got, 'runs the kernel');
              assert.deepEqual(got.shape, ref.shape);
              assert.ok(maxDiff(got, ref) <= 1e-5, `${[n, c, h, w, k, stride, pad]} relu ${relu} ${threads}t: ${maxDiff(got, ref)}`);
            }
          }
          Tensor.wrap(taps).dispose();
        }
      }),
    );
  }
});

test('max pooling kernel: equals max_pool2d, NaN included; null in ceil mode (the plan keeps ATen) and for NCHW input', () => {
  manualSeed(5);
  for (const threads of THREADS) {
    withThreads(threads, () =>
      tidy(() => {
        for (const [n, c, h, w, k, s, p] of [[1, 24, 32, 32, 3, 2, 1], [2, 5, 7, 9, 3, 2, 1], [1, 3, 6, 6, 2, 2, 0], [2, 4, 5, 5, 3, 1, 1]] as const) {
          const x = randn([n, c, h, w]).contiguous('channels_last');
          const ref = maxPool2d(x, k, { stride: s, padding: p });
          const got = wrapOrNull(N.maxPoolInfer(x.handle, k, k, [s, s], [p, p]))!;
          assert.deepEqual(got.shape, ref.shape);
          assert.equal(maxDiff(got, ref), 0, `${[n, c, h, w, k, s, p]} ${threads}t`);
        }
        // A NaN wins its windows, as in ATen.
        const x = tensor([1, 2, NaN, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]).contiguous('channels_last');
        const got = Tensor.wrap(N.maxPoolInfer(x.handle, 2, 2, [1, 1], [0, 0])).toArray() as Float32Array;
        const ref = maxPool2d(x, 2, { stride: 1 }).toArray() as Float32Array;
        assert.deepEqual([...got].map(String), [...ref].map(String));
        assert.ok(got[0] === 5 && Number.isNaN(got[1]!) && got[2] === 8 && got[3] === 9, `${[...got]}`);
        assert.equal(N.maxPoolInfer(randn([1, 4, 5, 5]).handle, 3, 3, [2, 2], [1, 1]), null, 'NCHW');
      }),
    );
  }
});

test("catShuffle: channel_shuffle(cat([a, b]), 2) in one copy, slices included; autograd inputs take the two ops and keep their gradient", () => {
  tidy(() => {
    const x = randn([2, 16, 3, 4]).contiguous('channels_last');
    const [a, b] = x.chunk(2, 1) as [Tensor, Tensor];
    const ref = channelShuffle(cat([a, b], 1), 2);
    const got = noGrad(() => catShuffle(a, b));
    assert.equal(maxDiff(got, ref), 0);
    assert.ok(got.isContiguous('channels_last'));
    const ga = randn([1, 4, 2, 2]).requiresGrad_();
    const out = catShuffle(ga, randn([1, 4, 2, 2]));
    assert.ok(out.requiresGrad, 'the autograd path');
    out.sum().backward();
    assert.ok(ga.grad, 'gradient reaches the input');
    assert.equal(N.catShuffle(randn([1, 4, 2, 2]).contiguous('channels_last').handle, randn([1, 5, 2, 2]).contiguous('channels_last').handle), null, 'shapes differ');
  });
});

test('ShuffleNetV2 plan: every unit runs as one native call, at any thread count, and equals the unfolded network', () => {
  const { model, plan } = plannedNetwork('shufflenet_v2_x0_5', 5, 6);
  assert.equal(plan.fusedUnits, 16, '4 + 8 + 4 units');
  for (const threads of THREADS) {
    withThreads(threads, () =>
      tidy(() => {
        for (const [n, s] of [[1, 64], [4, 40]]) {
          const x = randn([n, 3, s, s]).contiguous('channels_last');
          const ref = noGrad(() => model.forward(x));
          const got = plan.run(() => model.forward(x));
          assert.ok(maxDiff(got, ref) / Math.max(1, ref.abs().amax().item()) <= 1e-5, `${n}x${s} ${threads}t: ${maxDiff(got, ref)}`);
        }
      }),
    );
  }
  plan.dispose();
  model.dispose();
});

test("decomposition plan: expert units take the routing's counts and refuse counts that do not fit, with one line and nothing lost", () => {
  manualSeed(7);
  const live = memory().liveTensors;
  const dm = smallShuffleDecomposition();
  const plan = InferencePlan.of(dm);
  assert.equal(plan.fusedUnits, 16);
  tidy(() => {
    const x = randn([4, 3, 32, 32]).contiguous('channels_last');
    const good = new Routing([1, 0, 3]);
    const ref = noGrad(() => dm.forwardRouted(x, good, 'loop'));
    const got = plan.run(() => dm.forwardRouted(x, good, 'fused'));
    assert.ok(maxDiff(got.features, ref.features) <= 1e-5, `features ${maxDiff(got.features, ref.features)}`);
    const bad = new Routing([1, 0, 2]); // 3 rows for a batch of 4
    assert.throws(
      () => plan.run(() => dm.forwardRouted(x, bad, 'fused')),
      (e: Error) => /task ids|routing|rows|counts/.test(e.message) && !e.message.includes('\n'),
    );
    // The plan still works after the refusal.
    const again = plan.run(() => dm.forwardRouted(x, good, 'fused'));
    assert.equal(maxDiff(again.features, got.features), 0);
    good.dispose();
    bad.dispose();
  });
  plan.dispose();
  dm.dispose();
  assert.equal(memory().liveTensors, live, 'plan, units and model freed');
});

test('a prepared expert unit checks the counts it is given: one-line errors, and the unit still runs after them', () => {
  manualSeed(8);
  tidy(() => {
    // A stride-1 unit whose branch is one 1x1 expert convolution over 2 tasks, rank 2.
    const { w, b, A, B, unit } = preparedUnit(true);
    const x = randn([2, 8, 3, 3]).contiguous('channels_last');
    const run = (counts: number[] | null) => inferenceMode(() => N.shuffleUnitRun(unit, x.handle, counts));
    for (const counts of [[1, 0], [1, 1, 0], null]) {
      assert.throws(() => run(counts), (e: Error) => e instanceof TorchError && /counts|routing/.test(e.message) && !e.message.includes('\n'), String(counts));
    }
    const out = Tensor.wrap(run([1, 1]));
    // Reference: task t's row sees W + 0.5 B_t A_t; then the ReLU; then the shuffle with the untouched half.
    const [x1, x2] = x.chunk(2, 1) as [Tensor, Tensor];
    const rows = [0, 1].map((t) => {
      const wt = w.add(B.select(0, t).matmul(A.select(0, t)).mul(0.5).view([4, 4, 1, 1]));
      return conv2d(x2.narrow(0, t, 1).contiguous(), wt, b).relu();
    });
    const ref = channelShuffle(cat([x1, cat(rows, 0)], 1), 2);
    assert.ok(maxDiff(out, ref) <= 1e-5, `${maxDiff(out, ref)}`);
    N.shuffleUnitFree(unit);
    assert.throws(() => run([1, 1]), (e: Error) => e instanceof TorchError && /freed/.test(e.message));
  });
});

test('a unit the native call does not take (float64) runs its own layers in eval mode: the same function', () => {
  manualSeed(9);
  const model = createModel('shufflenet_v2_x0_5', { numClasses: 3 }).toDtype('float64');
  randomizeBatchNorms(model);
  model.train(); // the plan puts every module in eval mode for the run and back afterwards
  const plan = InferencePlan.of(model);
  assert.equal(plan.fusedUnits, 16);
  tidy(() => {
    const x = randn([2, 3, 32, 32]).double().contiguous('channels_last');
    const got = plan.run(() => model.forward(x));
    assert.ok(model.training && model.modules().every((m) => m.training), 'training flags restored');
    model.eval();
    const ref = noGrad(() => model.forward(x));
    assert.equal(got.dtype, 'float64');
    assert.ok(maxDiff(got, ref) <= 1e-10, `${maxDiff(got, ref)}`);
  });
  plan.dispose();
  model.dispose();
});

test('a plain stem-like InferenceConv2d equals conv2d (+ ReLU) within 1e-5 through the stem kernel (small outputs) and oneDNN (large)', () => {
  manualSeed(12);
  tidy(() => {
    const w = randn([24, 3, 3, 3]).mul(0.3);
    const b = randn([24]);
    for (const relu of [true, false]) {
      const layer = new InferenceConv2d({ weight: w.clone(), bias: b.clone() }, { stride: [2, 2], padding: [1, 1], dilation: [1, 1], groups: 1 }, relu);
      // 24,576 and 602,112 output values (the kernel's bound is 384 Ki).
      for (const [n, s] of [[1, 64], [2, 224]] as const) {
        const x = randn([n, 3, s, s]).contiguous('channels_last');
        const conv = conv2d(x, w, b, { stride: 2, padding: 1 });
        const ref = relu ? conv.relu() : conv;
        const got = noGrad(() => layer.forward(x));
        assert.ok(maxDiff(got, ref) <= 1e-5 * Math.max(1, ref.abs().amax().item()), `${n}x${s} relu ${relu}: ${maxDiff(got, ref)}`);
      }
      layer.dispose();
    }
  });
});

test('stem kernel: equals conv2d for 8-64 output channels (one weight, or one per task by the counts); null where it does not apply', (t) => {
  if (!N.stemConvInfer(randn([1, 3, 8, 8]).contiguous('channels_last').handle, N.stemTaps(randn([8, 3, 3, 3]).handle, null, null, 1), 3, 3, null, [1, 1], [1, 1], false, null)) {
    return t.skip('no AVX2 with FMA on this CPU: the stem runs oneDNN');
  }
  manualSeed(10);
  for (const threads of THREADS) {
    withThreads(threads, () =>
      tidy(() => {
        for (const [n, cin, s, cout, k, stride, pad] of [[1, 3, 64, 24, 3, 2, 1], [3, 1, 9, 16, 3, 1, 0], [2, 3, 10, 64, 5, 2, 2], [1, 2, 7, 8, 1, 1, 0], [1, 3, 12, 40, 3, 1, 1], [1, 3, 11, 48, 3, 2, 1], [1, 3, 20, 32, 3, 1, 1]] as const) {
          const x = randn([n, cin, s, s]).contiguous('channels_last');
          const w = randn([cout, cin, k, k]);
          const b = randn([cout]);
          const taps = N.stemTaps(w.handle, null, null, 1);
          for (const relu of [false, true]) {
            const conv = conv2d(x, w, b, { stride, padding: pad });
            const ref = relu ? conv.relu() : conv;
            const got = wrapOrNull(N.stemConvInfer(x.handle, taps, k, k, b.handle, [stride, stride], [pad, pad], relu, null))!;
            assert.ok(got, `${[n, cin, s, cout, k, stride, pad]} runs the kernel`);
            assert.ok(maxDiff(got, ref) <= 1e-4, `${[n, cin, s, cout, k, stride, pad]} ${threads}t: ${maxDiff(got, ref)}`);
          }
          Tensor.wrap(taps).dispose();
        }
        // Per task: W0 + s reshape(B_t A_t), images grouped by task.
        const [T, r, cout] = [3, 2, 16];
        const w0 = randn([cout, 3, 3, 3]);
        const A = randn([T, r, 9]);
        const B = randn([T, cout * 3, r]);
        const x = randn([4, 3, 12, 12]).contiguous('channels_last');
        const counts = [1, 0, 3];
        const taps = N.stemTaps(w0.handle, A.handle, B.handle, 0.5);
        const got = Tensor.wrap(N.stemConvInfer(x.handle, taps, 3, 3, null, [2, 2], [1, 1], true, counts));
        const merged = (task: number) => w0.add(B.select(0, task).matmul(A.select(0, task)).mul(0.5).view([cout, 3, 3, 3]));
        const ref = cat([conv2d(x.narrow(0, 0, 1), merged(0), null, { stride: 2, padding: 1 }), conv2d(x.narrow(0, 1, 3), merged(2), null, { stride: 2, padding: 1 })], 0).relu();
        assert.ok(maxDiff(got, ref) <= 1e-4, `per task: ${maxDiff(got, ref)}`);
        assert.equal(N.stemConvInfer(x.handle, taps, 3, 3, null, [2, 2], [1, 1], true, [1, 1, 1]), null, 'counts for 3 of 4 images');
        assert.equal(N.stemConvInfer(x.contiguous().handle, taps, 3, 3, null, [2, 2], [1, 1], true, counts), null, 'NCHW');
        const odd = N.stemTaps(randn([20, 3, 3, 3]).handle, null, null, 1);
        assert.equal(N.stemConvInfer(x.handle, odd, 3, 3, null, [1, 1], [1, 1], false, null), null, '20 output channels');
        Tensor.wrap(taps).dispose();
        Tensor.wrap(odd).dispose();
      }),
    );
  }
});

test('decomposition plan at rank 8 (the low-rank pass in registers) on x1.0 widths (58, 116, 232: channel tails) equals the loop strategy', () => {
  manualSeed(11);
  const tasks = [0, 1, 2, 3].map((t) => ({ name: `t${t}`, classNames: ['a', 'b', 'c'] }));
  const dm = new DecompositionModel({ model: 'shufflenet_v2_x1_0', tasks, rank: 8, strategy: 'fused' });
  randomizeDecomposition(dm);
  dm.eval();
  const plan = InferencePlan.of(dm);
  for (const threads of THREADS) {
    withThreads(threads, () =>
      tidy(() => {
        const routing = new Routing([2, 0, 1, 2]);
        const x = randn([5, 3, 24, 24]).contiguous('channels_last');
        const ref = noGrad(() => dm.forwardRouted(x, routing, 'loop'));
        const got = plan.run(() => dm.forwardRouted(x, routing, 'fused'));
        const scale = Math.max(1, ref.features.abs().amax().item());
        assert.ok(maxDiff(got.features, ref.features) / scale <= 1e-5, `${threads}t: ${maxDiff(got.features, ref.features)}`);
        routing.dispose();
      }),
    );
  }
  plan.dispose();
  dm.dispose();
});
