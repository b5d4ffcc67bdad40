// A ShuffleNetV2's stages as one native call (InferenceShuffleStages, shuffleUnitsRun): on two
// threads the batch is split into one part per thread, each running every unit; a decomposition's
// routing counts are split with it. Outputs must equal the unfolded network's at every thread
// count, for batches that split unevenly and parts that hold some tasks and not others.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn, tidy, noGrad, inferenceMode, memory, manualSeed, Tensor, TorchError } from '../src/tensor/index.js';
import { N } from '../src/tensor/ops-native.js';
import { Routing } from '../src/lorkd/routing.js';
import { InferencePlan } from '../src/infer/index.js';
import { plannedNetwork, smallShuffleDecomposition } from './helpers/random-decomposition.js';
import { withThreads } from './helpers/threads.js';
import { preparedUnit } from './helpers/prepared-unit.js';

const relDiff = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).abs().amax().item() / Math.max(1, b.abs().amax().item()));

test('plain ShuffleNetV2: the stages run as one call and equal the unfolded network on 1 and 2 threads, odd batches included', () => {
  const { model, plan } = plannedNetwork('shufflenet_v2_x0_5', 4, 11);
  assert.equal(plan.fusedStages, 1);
  for (const threads of [1, 2]) {
    withThreads(threads, () =>
      tidy(() => {
        for (const [n, s] of [[1, 48], [2, 32], [5, 40]] as const) {
          const x = randn([n, 3, s, s]).contiguous('channels_last');
          const ref = noGrad(() => model.forward(x));
          const got = plan.run(() => model.forward(x));
          assert.deepEqual(got.shape, ref.shape);
          assert.ok(relDiff(got, ref) <= 1e-5, `batch ${n} ${s}px ${threads}t: ${relDiff(got, ref)}`);
        }
      }),
    );
  }
  plan.dispose();
  model.dispose();
});

test('decomposition: each part of the split batch gets its own tasks\' counts (features equal the loop strategy)', () => {
  manualSeed(12);
  const live = memory().liveTensors;
  const dm = smallShuffleDecomposition();
  const plan = InferencePlan.of(dm);
  assert.equal(plan.fusedStages, 1);
  for (const threads of [1, 2]) {
    withThreads(threads, () =>
      tidy(() => {
        // Batch 5 on two threads: rows 0-1 and 2-4. [2, 0, 3] puts one task in each part; [1, 3, 1]
        // splits task 1 across both; [0, 0, 5] leaves a part with no rows for two tasks.
        for (const counts of [[2, 0, 3], [1, 3, 1], [0, 0, 5]]) {
          const x = randn([5, 3, 32, 32]).contiguous('channels_last');
          const routing = new Routing(counts);
          const ref = noGrad(() => dm.forwardRouted(x, routing, 'loop'));
          const got = plan.run(() => dm.forwardRouted(x, routing, 'fused'));
          assert.ok(relDiff(got.features, ref.features) <= 1e-5, `${counts} ${threads}t: ${relDiff(got.features, ref.features)}`);
          routing.dispose();
        }
      }),
    );
  }
  plan.dispose();
  dm.dispose();
  assert.equal(memory().liveTensors, live, 'plan, units and model freed');
});

test('shuffleUnitsRun refuses, in one line, units of different task counts, a freed unit and a non-unit', () => {
  manualSeed(13);
  tidy(() => {
    const plain = preparedUnit(false).unit;
    const expert = preparedUnit(true).unit;
    const x = randn([2, 8, 3, 3]).contiguous('channels_last');
    const run = (units: unknown[], counts: number[] | null) => inferenceMode(() => N.shuffleUnitsRun(units, x.handle, counts));
    const oneLine = (re: RegExp) => (e: Error) => e instanceof TorchError && re.test(e.message) && !e.message.includes('\n');
    assert.throws(() => run([expert, plain], [1, 1]), oneLine(/different numbers of tasks/));
    assert.throws(() => run([{}], null), oneLine(/not a prepared unit/));
    assert.throws(() => run([], null), oneLine(/no units/));
    const two = Tensor.wrap(run([plain, plain], null));
    const once = Tensor.wrap(inferenceMode(() => N.shuffleUnitRun(plain, x.handle, null)));
    const twice = Tensor.wrap(inferenceMode(() => N.shuffleUnitRun(plain, once.handle, null)));
    // (within rounding: on two threads each image of the batch is its own part, its own GEMM)
    assert.ok(relDiff(two, twice) <= 1e-6, `two units in one call = one call each: ${relDiff(two, twice)}`);
    N.shuffleUnitFree(plain);
    assert.throws(() => run([plain], null), oneLine(/freed/));
  });
});
