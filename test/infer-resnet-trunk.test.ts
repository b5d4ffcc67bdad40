// A ResNet's trunk (stem, max pooling, every residual block) runs as one native call on the
// inference path (src/infer/resnet-trunk.ts): its logits equal the unfolded network's at several
// inputs and batch sizes; where the call does not apply (autocast) the model's own layers run, the
// same function; a float64 ResNet or a decomposition keeps its layers; a freed trunk refuses to
// run; oneDNN's primitives are made once per layout and thread count; a block that sums into its
// input never writes over the caller's tensor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn, noGrad, tidy, manualSeed, autocast, memory, conv2d, setNumThreads, getNumThreads, Tensor as TensorClass, type Tensor } from '../src/tensor/index.js';
import type { NativeHandle } from '../src/tensor/native.js';
import { N } from '../src/tensor/ops-native.js';
import { TorchError } from '../src/tensor/errors.js';
import { randomizeBatchNorms } from './helpers/random-decomposition.js';
import { createModel } from '../src/models/registry.js';
import { DecompositionModel } from '../src/lorkd/index.js';
import { InferencePlan, directConv } from '../src/infer/index.js';

const oneDnn = N.oneDnnAvailable() as boolean;

function maxRelDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().amax().item() / Math.max(1, b.abs().amax().item()));
}

for (const [name, convs] of [['resnet18', 20], ['resnet50', 53]] as const) {
  test(`${name}: the trunk is one native call and its logits equal the unfolded network's (64x64 batch 1 and 5, 45x33 batch 2)`, (t) => {
    if (!oneDnn) return t.skip('this libtorch has no oneDNN');
    manualSeed(3);
    const model = createModel(name, { numClasses: 5 });
    randomizeBatchNorms(model);
    model.eval();
    const plan = InferencePlan.of(model);
    assert.equal(plan.residualTrunks, 1);
    assert.equal(plan.foldedConvs, convs, 'every convolution is folded (the trunk holds all but none outside it)');
    for (const [n, h, w] of [[1, 64, 64], [5, 64, 64], [2, 45, 33]] as const) {
      tidy(() => {
        const x = randn([n, 3, h, w]).contiguous('channels_last');
        const got = plan.run(() => model.forward(x));
        const ref = noGrad(() => model.forward(x));
        assert.deepEqual(got.shape, [n, 5]);
        assert.ok(maxRelDiff(got, ref) <= 1e-5, `${name} ${n}x${h}x${w}: ${maxRelDiff(got, ref)}`);
      });
    }
    plan.dispose();
    model.dispose();
  });
}

test('under autocast the trunk declines and the model\'s own layers run in eval mode: the same function', (t) => {
  if (!oneDnn) return t.skip('this libtorch has no oneDNN');
  manualSeed(4);
  const model = createModel('resnet18', { numClasses: 3 });
  randomizeBatchNorms(model);
  model.train(); // the plan puts the model in eval mode for the run and back afterwards
  const plan = InferencePlan.of(model);
  assert.equal(plan.residualTrunks, 1);
  tidy(() => {
    const x = randn([2, 3, 32, 32]).contiguous('channels_last');
    const got = plan.run(() => autocast('cpu', 'bf16', () => model.forward(x)));
    assert.ok(model.modules().every((m) => m.training), 'training flags restored');
    model.eval();
    const ref = noGrad(() => autocast('cpu', 'bf16', () => model.forward(x)));
    assert.equal(maxRelDiff(got, ref), 0);
  });
  plan.dispose();
  model.dispose();
});

test('a float64 ResNet and a decomposition with a ResNet backbone keep their layers (no trunk), with the same outputs', () => {
  manualSeed(5);
  const model = createModel('resnet18', { numClasses: 3 }).toDtype('float64');
  randomizeBatchNorms(model);
  model.eval();
  const plan = InferencePlan.of(model);
  assert.equal(plan.residualTrunks, 0);
  tidy(() => {
    const x = randn([2, 3, 32, 32]).double();
    assert.ok(maxRelDiff(plan.run(() => model.forward(x)), noGrad(() => model.forward(x))) <= 1e-10);
  });
  plan.dispose();
  model.dispose();
  const dm = new DecompositionModel({ model: 'resnet18', tasks: [{ name: 'a', classNames: ['x', 'y'] }], rank: 2, strategy: 'fused' });
  const dplan = InferencePlan.of(dm);
  assert.equal(dplan.residualTrunks, 0, 'expert convolutions run their EKS pass layer by layer');
  dplan.dispose();
  dm.dispose();
});

test('a freed trunk refuses to run (one-line error), and bad prepare arguments are refused; nothing leaks', (t) => {
  if (!oneDnn) return t.skip('this libtorch has no oneDNN');
  const live = memory().liveTensors;
  tidy(() => {
    const w = randn([8, 3, 3, 3]);
    const b = randn([8]);
    const conv = (relu: boolean, cin = 8) => [randn([8, cin, 3, 3]).handle, b.handle, [1, 1], [1, 1], [1, 1], 1, relu];
    const trunk = N.resnetTrunkPrepare([w.handle, b.handle, [1, 1], [1, 1], [1, 1], 1, true], null, [[[conv(true), conv(false)], null]]);
    const x = randn([1, 3, 8, 8]);
    const y = N.resnetTrunkRun(trunk, x.handle) as NativeHandle | null;
    assert.notEqual(y, null);
    assert.deepEqual(TensorClass.wrap(y!).shape, [1, 8, 8, 8], 'the native result is a tensor (wrapped: freed with the scope)');
    assert.equal(N.resnetTrunkRun(trunk, x.double().handle), null, 'float64: not taken');
    N.resnetTrunkFree(trunk);
    assert.throws(() => N.resnetTrunkRun(trunk, x.handle), (e: Error) => e instanceof TorchError && /freed/.test(e.message));
    assert.throws(() => N.resnetTrunkPrepare(null, null, [[[conv(true)], null]]), /the last without its ReLU/);
    assert.throws(() => N.resnetTrunkPrepare(null, null, [[[[w.handle, randn([3]).handle, [1, 1], [1, 1], [1, 1], 1, false]], null]]), /one value per output channel/);
  });
  assert.equal(memory().liveTensors, live, 'every tensor of the test freed');
});

test('oneDNN\'s primitives are made once per input layout and thread count, and the outputs do not depend on either', (t) => {
  const made = () => N.trunkOnednnPrimitives() as number;
  if (!oneDnn || made() < 0) return t.skip('this build has no oneDNN headers: the trunk runs ATen\'s ops');
  manualSeed(21);
  const model = createModel('resnet18', { numClasses: 4 });
  randomizeBatchNorms(model);
  model.eval();
  const plan = InferencePlan.of(model);
  const threads = getNumThreads();
  try {
    tidy(() => {
      // Batch 2 at 64 px: the stem and layer1-2 run oneDNN's primitives (the small stages of batch 1 do not).
      const x = randn([2, 3, 64, 64]).contiguous('channels_last');
      const ref = noGrad(() => model.forward(x));
      setNumThreads(1);
      const m0 = made();
      const one = plan.run(() => model.forward(x));
      const m1 = made();
      assert.ok(m1 > m0, 'the first run makes the primitives');
      plan.run(() => model.forward(x));
      assert.equal(made(), m1, 'the second run on one thread reuses them');
      setNumThreads(2);
      const two = plan.run(() => model.forward(x));
      assert.ok(made() > m1, 'on two threads a second set is made (oneDNN splits the work when it makes a primitive)');
      const m2 = made();
      plan.run(() => model.forward(x));
      assert.equal(made(), m2, 'and reused');
      assert.ok(maxRelDiff(one, ref) <= 1e-5 && maxRelDiff(two, ref) <= 1e-5, `max diff ${maxRelDiff(one, ref)} / ${maxRelDiff(two, ref)}`);
    });
  } finally {
    setNumThreads(threads);
    plan.dispose();
    model.dispose();
  }
});

test('a trunk with no stem sums its first block into a copy of the input, never into the caller\'s tensor', (t) => {
  if (!oneDnn) return t.skip('this libtorch has no oneDNN');
  manualSeed(22);
  tidy(() => {
    const w1 = randn([16, 16, 3, 3]).mul(0.2), w2 = randn([16, 16, 3, 3]).mul(0.2), b1 = randn([16]), b2 = randn([16]);
    const conv = (w: Tensor, b: Tensor, relu: boolean) => [w.handle, b.handle, [1, 1], [1, 1], [1, 1], 1, relu];
    const trunk = N.resnetTrunkPrepare(null, null, [[[conv(w1, b1, true), conv(w2, b2, false)], null]]);
    // oneDNN's chain, whose last convolution sums in place (the direct loop would take a block this small).
    const before = directConv({ enabled: false });
    for (const batch of [1, 3]) {
      for (const cl of [true, false]) {
        const x0 = randn([batch, 16, 9, 7]);
        const x = cl ? x0.contiguous('channels_last') : x0;
        const kept = x.clone();
        const y = TensorClass.wrap(N.resnetTrunkRun(trunk, x.handle) as NativeHandle);
        const ref = conv2d(conv2d(x0, w1, b1, { padding: 1 }).relu(), w2, b2, { padding: 1 }).add(x0).relu();
        assert.ok(maxRelDiff(y, ref) <= 1e-5, `batch ${batch}: max diff ${maxRelDiff(y, ref)}`);
        assert.equal(tidy(() => x.sub(kept).abs().amax().item()), 0, `batch ${batch} (${cl ? 'channels_last' : 'NCHW'}): the input is untouched`);
      }
    }
    directConv(before);
    N.resnetTrunkFree(trunk);
  });
});
