// The inference path (src/infer): outputs of the folded networks (BatchNorm folded, ReLU fused,
// pre-packed weights, inference mode) equal the unfolded networks' in eval mode within 1e-5, for
// ShuffleNetV2, ResNet (basic and bottleneck blocks) and decomposition models under every EKS
// strategy; the network is left exactly as it was; memory stays flat; training never runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn, noGrad, tidy, memory, manualSeed, isInferenceMode, crossEntropy, tensor, type Tensor } from '../src/tensor/index.js';
import { N } from '../src/tensor/ops-native.js';
import { randomizeBatchNorms } from './helpers/random-decomposition.js';
import { assertMemoryFlat } from './helpers/assert.js';
import type { Module } from '../src/nn/module.js';
import { createModel } from '../src/models/registry.js';
import { DecompositionModel, type TaskSpec } from '../src/lorkd/index.js';
import { Routing } from '../src/lorkd/routing.js';
import { STRATEGIES } from '../src/lorkd/strategies.js';
import { InferencePlan, InferenceConv2d, withInference } from '../src/infer/index.js';

/** BatchNorm statistics and affine parameters away from identity, expert B factors off zero. */
function randomize(m: Module): void {
  randomizeBatchNorms(m);
  // By name, so per-task factor keys (expertB.<task>) are found as well as stacked ones.
  noGrad(() => {
    for (const [name, p] of m.namedParameters()) if (/(^|\.)expertB(\.|$)/.test(name)) p.normal_(0, 0.05);
  });
}

function maxRelDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().amax().item() / Math.max(1, b.abs().amax().item()));
}

const TASKS: TaskSpec[] = [2, 3, 4].map((n, i) => ({ name: `task${i}`, classNames: Array.from({ length: n }, (_, c) => `c${c}`) }));

for (const name of ['shufflenet_v2_x0_5', 'resnet18', 'resnet50']) {
  test(`${name}: the folded network's logits equal the unfolded ones within 1e-5 (NCHW and channels_last)`, () => {
    manualSeed(1);
    const model = createModel(name, { numClasses: 7 });
    randomize(model);
    model.eval();
    const plan = InferencePlan.of(model);
    assert.ok(plan.foldedConvs > 0, 'some convolutions were folded');
    for (const cl of [false, true]) {
      tidy(() => {
        const x = randn([3, 3, 32, 32]);
        const xi = cl ? x.contiguous('channels_last') : x;
        const ref = noGrad(() => model.forward(xi));
        const got = plan.run(() => model.forward(xi));
        assert.ok(maxRelDiff(got, ref) <= 1e-5, `${name} ${cl ? 'channels_last' : 'NCHW'}: max diff ${maxRelDiff(got, ref)}`);
        // A second call runs the pre-packed weights made by the first, at another batch size.
        const x2 = randn([2, 3, 32, 32]);
        const x2i = cl ? x2.contiguous('channels_last') : x2;
        assert.ok(maxRelDiff(plan.run(() => model.forward(x2i)), noGrad(() => model.forward(x2i))) <= 1e-5, 'second batch size');
      });
    }
    plan.dispose();
    model.dispose();
  });
}

// Every strategy on ShuffleNetV2; two on ResNet (its named conv/bn pairs), to keep the file fast;
// and a rank per task (factors zero-padded to the largest rank when packed).
const CASES: [string, readonly string[], number | Record<string, number>][] = [
  ['shufflenet_v2_x0_5', STRATEGIES, 2],
  ['shufflenet_v2_x0_5', ['fused', 'loop'], { task0: 1, task1: 4, task2: 2 }],
  ['resnet18', ['fused', 'loop'], 2],
];
for (const [backbone, strategies, rank] of CASES) {
  test(`decomposition model (${backbone}, rank ${JSON.stringify(rank)}): the folded EKS pass equals the unfolded output of ${strategies.join(', ')} within 1e-5`, () => {
    manualSeed(2);
    const live = memory().liveTensors;
    const dm = new DecompositionModel({ model: backbone, tasks: TASKS, rank, strategy: 'fused' });
    randomize(dm);
    dm.eval();
    const plan = InferencePlan.of(dm);
    // The shared convolutions are pre-packed on the first batch (5 rows, task 1 absent); a later
    // batch of another size and routing runs through the same packing.
    for (const counts of [[2, 0, 3], [1, 4, 2]]) {
      const routing = new Routing(counts);
      tidy(() => {
        const x = randn([routing.batchSize, 3, 16, 16]).contiguous('channels_last');
        const got = plan.run(() => dm.forwardRouted(x, routing, 'fused'));
        for (const s of strategies) {
          const ref = noGrad(() => dm.forwardRouted(x, routing, s as (typeof STRATEGIES)[number]));
          assert.ok(maxRelDiff(got.features, ref.features) <= 1e-5, `${s} ${counts}: features differ by ${maxRelDiff(got.features, ref.features)}`);
          ref.logits.forEach((l, t) => {
            if (!l) return assert.equal(got.logits[t], null);
            assert.ok(maxRelDiff(got.logits[t]!, l) <= 1e-5, `${s} ${counts}: task ${t} logits`);
          });
        }
      });
      routing.dispose();
    }
    plan.dispose();
    dm.dispose();
    assert.equal(memory().liveTensors, live, 'plan, model and packed factors all freed');
  });
}

test("the EKS pass's low-rank paths find the BLAS that libtorch's mm uses (Debian's libtorch; else they run through ATen)", (t) => {
  if (process.env.LIBTORCH) return t.skip('another libtorch: it may have no sgemm_ of its own, and the ATen route (tested above) runs instead');
  assert.equal(N.lowRankBlasAvailable(), true);
});

test('a plan leaves the network as it was: same modules, state dict and training flags; inference mode only inside', () => {
  manualSeed(3);
  const model = createModel('shufflenet_v2_x0_5', { numClasses: 4 });
  model.getModule('conv5').eval(); // a mix of modes, which the plan must give back as they were
  const modes = model.modules().map((m) => m.training);
  const before = model.namedModules();
  const keys = [...model.stateDict().keys()];
  const plan = InferencePlan.of(model);
  let inside = false;
  let inferenceOut = false;
  tidy(() =>
    plan.run(() => {
      inside = isInferenceMode();
      const y = model.forward(randn([2, 3, 32, 32]));
      inferenceOut = N.isInferenceTensor(y.handle) as boolean;
      // The folded layers are in place while fn runs.
      assert.ok(model.modules().some((m) => m instanceof InferenceConv2d));
    }),
  );
  assert.ok(inside && inferenceOut, 'fn ran in inference mode');
  assert.equal(isInferenceMode(), false);
  const after = model.namedModules();
  assert.deepEqual(after.map(([n]) => n), before.map(([n]) => n));
  after.forEach(([, m], i) => assert.equal(m, before[i]![1], 'the same module objects'));
  assert.deepEqual([...model.stateDict().keys()], keys);
  assert.deepEqual(model.modules().map((m) => m.training), modes, 'training flags restored');
  // Training mode inside a plan is refused rather than silently skipping BatchNorm's statistics.
  assert.throws(() => plan.run(() => model.train().forward(randn([2, 3, 32, 32]))), /eval mode only/);
  plan.dispose();
  assert.throws(() => plan.run(() => 0), /after dispose/);
  model.dispose();
});

test('training after an evaluation through the inference path still records gradients (it never runs folded layers)', () => {
  manualSeed(4);
  const dm = new DecompositionModel({ model: 'shufflenet_v2_x0_5', tasks: TASKS, rank: 2, strategy: 'fused' });
  dm.eval();
  const routing = new Routing([1, 1, 2]);
  tidy(() => withInference(dm, () => dm.forwardRouted(randn([4, 3, 16, 16]).contiguous('channels_last'), routing, 'fused')));
  dm.train();
  tidy(() => {
    const out = dm.forwardRouted(randn([4, 3, 16, 16]).contiguous('channels_last'), routing, 'fused');
    const loss = crossEntropy(out.logits[2]!, tensor([0, 1], [2], { dtype: 'int64' }));
    loss.backward();
  });
  const grads = dm.parameters().filter((p) => p.grad !== null).length;
  assert.ok(grads > 0.9 * dm.parameters().length - TASKS.length * 2, `gradients on ${grads} parameters`);
  routing.dispose();
  dm.dispose();
});

test('8 folded forwards and 8 plans built and freed keep memory flat', () => {
  manualSeed(5);
  const dm = new DecompositionModel({ model: 'shufflenet_v2_x0_5', tasks: TASKS, rank: 2, strategy: 'fused' });
  randomize(dm);
  dm.eval();
  const routing = new Routing([1, 2, 1]);
  const x = randn([4, 3, 16, 16]).contiguous('channels_last');
  const plan = InferencePlan.of(dm);
  const once = () => tidy(() => void plan.run(() => dm.forwardRouted(x, routing, 'fused')));
  const fresh = () => tidy(() => void withInference(dm, () => dm.forwardRouted(x, routing, 'fused')));
  assertMemoryFlat(() => {
    once();
    fresh();
  }, 8);
  plan.dispose();
  x.dispose();
  routing.dispose();
  dm.dispose();
});
