// Multi-task suites (offsets, labels, errors), the seeded sampler (determinism, coverage, partial
// batches, balanced mode) and the PRNG (against a BigInt reference implementation).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchSampler, Rng, TaskSuite, type TaskData, type Split } from '../src/data/index.js';
import { UserError } from '../src/tensor/errors.js';

/** A synthetic task: sizes per split, labels i % numClasses, pixel bytes encode (task, index). */
function fakeTask(name: string, numClasses: number, sizes: Record<Split, number>, hw = 2): TaskData {
  const mk = (n: number, tag: number) => ({
    n,
    channels: 3 as const,
    height: hw,
    width: hw,
    images: Uint8Array.from({ length: n * 3 * hw * hw }, (_, i) => (Math.floor(i / (3 * hw * hw)) * 3 + tag) % 256),
    labels: Int32Array.from({ length: n }, (_, i) => i % numClasses),
  });
  return {
    name,
    classNames: Array.from({ length: numClasses }, (_, i) => `${name}-c${i}`),
    task: numClasses === 2 ? 'binary-class' : 'multi-class',
    sourceChannels: 1,
    splits: { train: mk(sizes.train, 0), val: mk(sizes.val, 1), test: mk(sizes.test, 2) },
  };
}

test('suite: class offsets, total classes, local/global labels and task ids', () => {
  const suite = new TaskSuite([
    fakeTask('a', 2, { train: 5, val: 2, test: 3 }),
    fakeTask('b', 5, { train: 7, val: 1, test: 2 }),
    fakeTask('c', 3, { train: 4, val: 3, test: 1 }),
  ]);
  assert.equal(suite.numTasks, 3);
  assert.equal(suite.totalClasses, 10);
  assert.deepEqual(suite.tasks.map((t) => t.classOffset), [0, 2, 7]);
  assert.deepEqual(suite.tasks.map((t) => t.id), [0, 1, 2]);
  assert.deepEqual(suite.task('b').sizes, { train: 7, val: 1, test: 2 });
  assert.equal(suite.globalClassNames()[7], 'c/c-c0');
  assert.equal(suite.globalClassNames().length, 10);
  assert.equal(suite.globalLabel(1, 4), 6);
  assert.deepEqual(suite.fromGlobal(6), { taskId: 1, local: 4 });
  assert.deepEqual(suite.fromGlobal(9), { taskId: 2, local: 2 });
  assert.throws(() => suite.fromGlobal(10), RangeError);
  assert.throws(() => suite.globalLabel(0, 2), RangeError);

  const tr = suite.split('train');
  assert.equal(tr, suite.split('train'), 'cached');
  assert.equal(tr.n, 16);
  assert.deepEqual(tr.taskStart, [0, 5, 12]);
  assert.deepEqual(tr.taskSizes, [5, 7, 4]);
  for (let i = 0; i < tr.n; i++) {
    const t = i < 5 ? 0 : i < 12 ? 1 : 2;
    const row = i - [0, 5, 12][t]!;
    const local = row % [2, 5, 3][t]!;
    assert.equal(tr.taskIds[i], t);
    assert.equal(tr.rowOf(i), row);
    assert.equal(tr.local[i], local);
    assert.equal(tr.global[i], local + [0, 2, 7][t]!);
  }
  assert.equal(suite.split('test').n, 6);
});

test('suite: errors', () => {
  assert.throws(() => new TaskSuite([]), UserError);
  const a = fakeTask('a', 2, { train: 1, val: 1, test: 1 });
  assert.throws(() => new TaskSuite([a, a]), /task 'a' appears twice/);
  const s = new TaskSuite([a, fakeTask('big', 2, { train: 1, val: 1, test: 1 }, 3)]);
  // tasks of different stored sizes share a suite (batches are resized where they are made: data-tasks64.test.ts)
  assert.deepEqual([s.split('train').heights, s.split('train').uniform], [[2, 3], false]);
  assert.throws(() => s.task('zzz'), /no task 'zzz' in the suite \(tasks: a, big\)/);
  assert.throws(() => s.split('dev' as Split), /unknown split 'dev'/);
});

// ---- PRNG

/** xoshiro128** written from the reference C code with BigInt arithmetic. */
function referenceXoshiro(state: bigint[]): () => number {
  const s = state.slice();
  const M = 0xffffffffn;
  const rotl = (x: bigint, k: bigint) => ((x << k) | (x >> (32n - k))) & M;
  return () => {
    const result = (rotl((s[1]! * 5n) & M, 7n) * 9n) & M;
    const t = (s[1]! << 9n) & M;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11n);
    return Number(result);
  };
}

test('rng: xoshiro128** matches a BigInt reference; derived streams are deterministic and distinct', () => {
  for (const st of [[1, 2, 3, 4], [0xdeadbeef, 0x12345678, 0xffffffff, 7]] as [number, number, number, number][]) {
    const r = Rng.fromState(st);
    const ref = referenceXoshiro(st.map(BigInt));
    for (let i = 0; i < 2000; i++) assert.equal(r.nextU32(), ref());
  }
  // The first output for state (1,2,3,4) by hand: rotl(2*5, 7) * 9 = 1280 * 9.
  assert.equal(Rng.fromState([1, 2, 3, 4]).nextU32(), 11520);
  const a = Rng.from(42, 'order', 3);
  const b = Rng.from(42, 'order', 3);
  const seqA = Array.from({ length: 20 }, () => a.nextU32());
  assert.deepEqual(seqA, Array.from({ length: 20 }, () => b.nextU32()));
  assert.deepEqual(Rng.fromState(a.state()).nextU32(), a.nextU32());
  const others = [Rng.from(42, 'order', 4), Rng.from(43, 'order', 3), Rng.from(42, 'flip', 3), Rng.from(42 + 2 ** 32, 'order', 3)];
  for (const o of others) assert.notDeepEqual(Array.from({ length: 20 }, () => o.nextU32()), seqA);
  // int(n): in range and roughly uniform (chi-square over 6 bins, 60000 draws; 99.9% bound is 20.5)
  const r = Rng.from(1);
  const bins = new Array(6).fill(0);
  for (let i = 0; i < 60000; i++) bins[r.int(6)]++;
  const chi = bins.reduce((s, c) => s + (c - 10000) ** 2 / 10000, 0);
  assert.ok(chi < 20.5, `chi-square ${chi}`);
  for (let i = 0; i < 1000; i++) {
    const f = r.float();
    assert.ok(f >= 0 && f < 1);
  }
  assert.throws(() => r.int(0), RangeError);
  assert.throws(() => Rng.fromState([0, 0, 0, 0]), RangeError);
});

// ---- sampler

const flat = (bs: Int32Array[]) => bs.flatMap((b) => Array.from(b));

test('sampler: every index exactly once per epoch, deterministic in (seed, epoch)', () => {
  const s = new BatchSampler([5, 7, 4], { batchSize: 3, seed: 9 });
  assert.equal(s.n, 16);
  assert.equal(s.numBatches, 6);
  const e0 = s.epoch(0);
  assert.equal(e0.length, 6);
  assert.deepEqual(e0.map((b) => b.length), [3, 3, 3, 3, 3, 1], 'last partial batch kept');
  assert.deepEqual(flat(e0).sort((x, y) => x - y), Array.from({ length: 16 }, (_, i) => i));
  assert.deepEqual(flat(s.epoch(0)), flat(e0));
  assert.deepEqual(flat(new BatchSampler([5, 7, 4], { batchSize: 3, seed: 9 }).epoch(0)), flat(e0), 'a new sampler, same order');
  assert.notDeepEqual(flat(s.epoch(1)), flat(e0));
  assert.notDeepEqual(flat(new BatchSampler([5, 7, 4], { batchSize: 3, seed: 10 }).epoch(0)), flat(e0));
  assert.deepEqual(flat(new BatchSampler([5, 7, 4], { batchSize: 5, seed: 9 }).epoch(0)), flat(e0), 'batch size only cuts the order');
  // coverage over many epochs, larger n
  const big = new BatchSampler([300, 1000, 37], { batchSize: 64, seed: 1 });
  for (let e = 0; e < 5; e++) {
    const seen = new Uint8Array(big.n);
    for (const i of flat(big.epoch(e))) seen[i]!++;
    assert.ok(seen.every((c) => c === 1), `epoch ${e}`);
  }
  // plain shuffle mixes tasks: the first batch is not all task 1 (would be with no shuffle)
  const firstTasks = new Set(Array.from(big.epoch(0)[0]!, (i) => (i < 300 ? 0 : i < 1300 ? 1 : 2)));
  assert.ok(firstTasks.size >= 2);
});

test('sampler: drop last, no shuffle, options checked', () => {
  const d = new BatchSampler([5, 7, 4], { batchSize: 3, seed: 9, dropLast: true });
  assert.equal(d.numBatches, 5);
  const ep = d.epoch(0);
  assert.deepEqual(ep.map((b) => b.length), [3, 3, 3, 3, 3]);
  const keep = new BatchSampler([5, 7, 4], { batchSize: 3, seed: 9 }).epoch(0);
  assert.deepEqual(flat(ep), flat(keep).slice(0, 15), 'same order, last batch dropped');
  const exact = new BatchSampler([4, 4], { batchSize: 4, dropLast: true });
  assert.equal(exact.numBatches, 2);
  const ordered = new BatchSampler([3, 2], { batchSize: 2, shuffle: false });
  assert.deepEqual(ordered.epoch(7).map((b) => Array.from(b)), [[0, 1], [2, 3], [4]]);
  assert.throws(() => new BatchSampler([3], { batchSize: 0 }), UserError);
  assert.throws(() => new BatchSampler([-1], { batchSize: 2 }), UserError);
  assert.equal(new BatchSampler([], { batchSize: 2 }).epoch(0).length, 0);
});

test('sampler: balanced mode gives each task an equal share per epoch and per batch', () => {
  const sizes = [10, 200, 50];
  const starts = [0, 10, 210];
  const taskOf = (i: number) => (i < 10 ? 0 : i < 210 ? 1 : 2);
  const s = new BatchSampler(sizes, { batchSize: 30, seed: 3, balanced: true });
  assert.equal(s.epochLength, 260);
  assert.equal(s.numBatches, 9);
  const ep = s.epoch(0);
  const all = flat(ep);
  assert.equal(all.length, 260);
  assert.ok(all.every((i) => i >= 0 && i < 260));
  const perTask = [0, 0, 0];
  for (const i of all) perTask[taskOf(i)]!++;
  assert.ok(Math.max(...perTask) - Math.min(...perTask) <= 1, `per-task counts ${perTask}`);
  for (const b of ep) {
    const c = [0, 0, 0];
    for (const i of b) c[taskOf(i)]!++;
    if (b.length === 30) assert.ok(Math.max(...c) - Math.min(...c) <= 2, `batch task counts ${c}`);
  }
  // Within a task, no sample repeats before all of its samples are used:
  // task 0 (10 samples, ~87 draws) cycles through full permutations, task 1 is subsampled without repeats.
  for (let t = 0; t < 3; t++) {
    const draws = all.filter((i) => taskOf(i) === t).map((i) => i - starts[t]!);
    for (let k = 0; k + sizes[t]! <= draws.length; k += sizes[t]!) {
      assert.equal(new Set(draws.slice(k, k + sizes[t]!)).size, sizes[t], `task ${t} cycle at ${k}`);
    }
    if (draws.length < sizes[t]!) assert.equal(new Set(draws).size, draws.length);
  }
  assert.deepEqual(flat(s.epoch(0)), all, 'deterministic');
  assert.notDeepEqual(flat(s.epoch(1)), all);
  const sized = new BatchSampler(sizes, { batchSize: 30, seed: 3, balanced: true, epochSize: 90, dropLast: true });
  assert.equal(sized.numBatches, 3);
  assert.equal(flat(sized.epoch(0)).length, 90);
  // empty tasks are skipped
  const withEmpty = new BatchSampler([0, 4, 4], { batchSize: 4, seed: 0, balanced: true });
  assert.deepEqual(flat(withEmpty.epoch(0)).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7]);
});
