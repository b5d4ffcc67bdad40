// The method seam (docs/ARCHITECTURE.md): batches are sorted by task in one place (the loader's
// plan) and an unsorted one is refused; the routing and strategy are call arguments (nothing on
// the model between calls); channels_last reaches every expert conv, also for shuffled batches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn, tidy, noGrad, manualSeed, memory, type Tensor } from '../src/tensor/index.js';
import { UserError } from '../src/tensor/errors.js';
import { DataLoader, Rng, TaskSuite, Routing, makeTaskBatch, type TaskData } from '../src/data/index.js';
import { DecompositionModel, ExpertConv2d, RUN, AutoStrategy, type TaskSpec } from '../src/lorkd/index.js';

function task(name: string, n: number, seed: number, classes: number): TaskData {
  const r = Rng.from(seed);
  const mk = () => ({ n, channels: 3 as const, height: 8, width: 8, images: Uint8Array.from({ length: n * 192 }, () => r.int(256)), labels: Int32Array.from({ length: n }, (_, i) => i % classes) });
  return { name, classNames: Array.from({ length: classes }, String), task: 'multi-class', sourceChannels: 3, splits: { train: mk(), val: mk(), test: mk() } };
}
const suite = new TaskSuite([task('a', 13, 1, 2), task('b', 17, 2, 3), task('c', 9, 3, 2)]);
const TASKS: TaskSpec[] = suite.tasks.map((t) => ({ name: t.name, classNames: t.classNames }));
const isCl = (x: Tensor) => x.isContiguous('channels_last') && !x.isContiguous();

test('Routing.fromSortedTaskIds: counts of sorted ids; unsorted ids and bad ids refused', () => {
  const r = Routing.fromSortedTaskIds([0, 0, 2, 2, 2], 3);
  assert.deepEqual(r.counts, [2, 0, 3]);
  assert.deepEqual(r.offsets, [0, 2, 2]);
  assert.deepEqual(Array.from(r.taskIdArray()), [0, 0, 2, 2, 2]);
  assert.deepEqual(r.toJSON(), { counts: [2, 0, 3] });
  assert.throws(() => Routing.fromSortedTaskIds([0, 1, 0], 2), (e: Error) => e instanceof UserError && /not sorted by task \(row 2 has task 0 after task 1\)/.test(e.message));
  assert.throws(() => Routing.fromSortedTaskIds([0, 3], 3), (e: Error) => e instanceof UserError && /task id 3 out of range/.test(e.message));
});

test('the loader sorts each batch by task (stable) in its plan; batches carry routing, labels, teacher rows, channels_last images', async () => {
  const split = suite.split('train');
  const opts = { split: 'train' as const, batchSize: 10, seed: 3, flip: true, channelsLast: true };
  const loader = new DataLoader(suite, opts);
  const live = memory().liveTensors;
  try {
    const plan = loader.plan(0);
    // Independent check: each plan batch is a permutation of the sampler's batch, grouped by task,
    // in the sampler's order within each task.
    const raw = loader.sampler.epoch(0);
    plan.forEach((p, k) => {
      const want = [0, 1, 2].flatMap((t) => Array.from(raw[k]!).filter((i) => split.taskIds[i] === t));
      assert.deepEqual(Array.from(p.indices), want, `batch ${k}`);
    });
    let k = 0;
    for await (const b of loader.epochAsync(0)) {
      const ids = Array.from(b.info.indices, (i) => split.taskIds[i]!);
      assert.deepEqual(Array.from(b.routing.taskIdArray()), ids, 'routing matches the rows');
      assert.deepEqual(b.local.toNumbers(), Array.from(b.info.indices, (i) => split.local[i]!));
      assert.deepEqual(b.teacherRows.toNumbers(), Array.from(b.info.indices, (i, j) => i + (b.info.flipped[j] ? split.n : 0)));
      assert.ok(isCl(b.images), 'images are channels_last');
      assert.deepEqual(Array.from(b.info.flipped), Array.from(plan[k]!.flips));
      b.dispose();
      k++;
    }
    assert.equal(k, plan.length);
  } finally {
    await loader.close();
  }
  assert.equal(memory().liveTensors, live, 'batches free everything');
});

test('a batch made from unsorted rows is refused where batches are made', () => {
  const split = suite.split('val');
  assert.throws(() => makeTaskBatch(split, Int32Array.from([14, 0]), new Uint8Array(2)), (e: Error) => e instanceof UserError && /not sorted by task/.test(e.message));
});

/** Records whether each fused expert conv call saw a channels_last input. */
function recordFormats<T>(fn: () => T): { seen: boolean[]; out: T } {
  const original = RUN.fused;
  const seen: boolean[] = [];
  RUN.fused = (x, w, r) => {
    // channels_last memory (channel stride 1); the stride-1 units' channel halves are slices of it.
    seen.push(x.strides[1] === 1 || x.size(2) * x.size(3) === 1);
    return original(x, w, r);
  };
  try {
    return { seen, out: fn() };
  } finally {
    RUN.fused = original;
  }
}

test('channels_last survives: shuffled forwardTasks and loader batches reach every expert conv in channels_last', () => {
  manualSeed(0);
  const dm = new DecompositionModel({ model: 'shufflenet_v2_x0_5', tasks: TASKS, rank: 2, strategy: 'fused' }).toChannelsLast();
  const n = dm.expertConvs().length;
  tidy(() => {
    const x = randn([6, 3, 16, 16]).contiguous('channels_last');
    const a = recordFormats(() => dm.forwardTasks(x, [2, 0, 1, 0, 2, 1]));
    assert.equal(a.seen.length, n);
    assert.ok(a.seen.every(Boolean), `NCHW reached ${a.seen.filter((s) => !s).length} of ${n} expert convs`);
  });
  const loader = new DataLoader(suite, { split: 'train', batchSize: 12, seed: 1, size: 16, channelsLast: true });
  for (const b of loader.epoch(0)) {
    tidy(() => {
      const r = recordFormats(() => dm.forwardRouted(b.images, b.routing));
      assert.ok(r.seen.length === n && r.seen.every(Boolean));
    });
    b.dispose();
  }
  dm.dispose();
});

test('routing and strategy are arguments: interleaved calls give what each call gives alone', () => {
  manualSeed(1);
  // float64 in train mode: batch statistics keep the features O(1), strategies agree to ~1e-12.
  const dm = new DecompositionModel({ model: 'shufflenet_v2_x0_5', tasks: TASKS, rank: 2, strategy: 'fused' }).toDtype('float64');
  assert.equal('context' in dm, false, 'no shared routing state on the model');
  const near = (a: number[], b: number[], what: string) => {
    const scale = Math.max(...b.map(Math.abs));
    assert.ok(scale > 0.1, `${what}: features carry signal`);
    a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) <= 1e-9 * scale, `${what}[${i}]`));
  };
  noGrad(() =>
    tidy(() => {
      for (const [, c] of dm.expertConvs()) noGrad(() => c.getModule('expertB').parameters().forEach((b) => b.normal_(0, 0.3)));
      const x1 = randn([4, 3, 16, 16], { dtype: 'float64' });
      const x2 = randn([3, 3, 16, 16], { dtype: 'float64' });
      const r1 = new Routing([1, 2, 1]);
      const r2 = new Routing([0, 0, 3]);
      const a1 = dm.forwardRouted(x1, r1, 'fused').features.toNumbers();
      const a2 = dm.forwardRouted(x2, r2, 'routed').features.toNumbers();
      const b2 = dm.forwardRouted(x2, r2, 'routed').features.toNumbers();
      const b1 = dm.forwardRouted(x1, r1, 'fused').features.toNumbers();
      near(a1, b1, 'batch 1');
      near(a2, b2, 'batch 2');
      // A different routing of the same rows changes the result (the routing is really used).
      const c1 = dm.forwardRouted(x1, new Routing([4, 0, 0]), 'fused').features.toNumbers();
      assert.ok(c1.some((v, i) => Math.abs(v - a1[i]!) > 1e-3), 'routing changes the output');
      assert.throws(() => dm.forwardRouted(x1, r2), (e: Error) => e instanceof UserError && /3 task ids for a batch of 4/.test(e.message));
      const conv = dm.expertConvs()[0]![1] as ExpertConv2d;
      assert.throws(() => (conv.forward as (x: Tensor) => Tensor)(x1), (e: Error) => e instanceof UserError && /no task routing/.test(e.message));
      r1.dispose();
      r2.dispose();
    }),
  );
  dm.dispose();
});

test('chooseStrategy: the configured strategy, or auto\'s recorded choice as a plain value', () => {
  const fixed = new DecompositionModel({ model: 'shufflenet_v2_x0_5', tasks: TASKS, rank: 2, strategy: 'gathered' });
  const auto = new DecompositionModel({ model: 'shufflenet_v2_x0_5', tasks: TASKS, rank: 2, strategy: 'auto' });
  tidy(() => {
    const x = randn([3, 3, 16, 16]);
    const r = new Routing([1, 1, 1]);
    assert.equal(fixed.chooseStrategy(x, r, true), 'gathered');
    auto.auto.set(AutoStrategy.key(x, true), 'routed');
    assert.equal(auto.chooseStrategy(x, r, true), 'routed');
    assert.deepEqual(auto.auto.measurements.map((m) => [m.best, Object.keys(m.ms).length]), [['routed', 0]], 'no measurement was run');
    r.dispose();
  });
  fixed.dispose();
  auto.dispose();
});
