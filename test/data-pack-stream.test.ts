// Training and evaluation from packs (src/data/packed.ts, stream.ts): raw packs of the six bundled
// tasks give the same batches as the in-memory suite, bit for bit (images, labels, teacher rows,
// routing), in training (one process, and a rank's share of two) and evaluation; a decomposition epoch from a pack ends with the weights of
// the in-memory epoch (with a teacher cache: logit KD from a foundation); a JPEG pack's rows are
// cropped to the input, the random crop a function of (seed, epoch, index); a broken shard is one
// line naming it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeTaskNpz } from './helpers/pipeline.js';
import { manualSeed, setNumThreads, UserError } from '../src/tensor/index.js';
import { loadTasks } from '../src/data/medmnist.js';
import { MED6, TASKS64 } from '../src/data/bundled.js';
import { packTasks } from '../src/data/pack-tasks.js';
import { loadSuite, trainLoader, evalLoader, type DataOptions } from '../src/experiments/data-options.js';
import type { DataLoader } from '../src/data/index.js';
import { trainDecomposition, type DecomposeOptions } from '../src/experiments/decompose.js';
import { createProgress } from '../src/experiments/progress.js';
import { createModel } from '../src/models/index.js';
import { saveFoundation } from '../src/experiments/foundation-file.js';
import { decodeJpeg, openPack } from '../src/pack/index.js';
import { probeSet } from '../src/experiments/analysis.js';

setNumThreads(1);
const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-pack-stream-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const quiet = createProgress({ quiet: true });

/** Every batch of an epoch as plain arrays (image bytes, labels, rows, routing). */
function epochOf(loader: DataLoader, epoch: number): { images: Uint8Array; local: number[]; rows: number[]; counts: number[] }[] {
  return [...loader.epoch(epoch)].map((b) => {
    const r = { images: b.images.contiguous().toBytes(), local: b.local.toNumbers(), rows: b.teacherRows.toNumbers(), counts: [...b.routing.counts] };
    b.dispose();
    return r;
  });
}

function assertSameEpochs(a: ReturnType<typeof epochOf>, b: ReturnType<typeof epochOf>, what: string): void {
  assert.equal(a.length, b.length, `${what}: batches`);
  a.forEach((x, k) => {
    assert.deepEqual(b[k]!.counts, x.counts, `${what} batch ${k}: routing`);
    assert.deepEqual(b[k]!.local, x.local, `${what} batch ${k}: labels`);
    assert.deepEqual(b[k]!.rows, x.rows, `${what} batch ${k}: teacher rows`);
    assert.ok(Buffer.from(b[k]!.images).equals(Buffer.from(x.images)), `${what} batch ${k}: images differ`);
  });
}

test('raw packs of the six bundled tasks give the in-memory batches bit for bit (a training epoch; evaluation)', { timeout: 180_000 }, async () => {
  const small = path.join(dir, 'med28');
  const large = path.join(dir, 'tasks64');
  const tasks = loadTasks(MED6);
  await packTasks(small, tasks.filter((t) => !TASKS64.includes(t.name)), { storage: 'raw', shardBytes: 4 * 2 ** 20 });
  await packTasks(large, tasks.filter((t) => TASKS64.includes(t.name)), { storage: 'raw', shardBytes: 4 * 2 ** 20 });
  const o: DataOptions = { tasks: [...MED6], input: 48, batch: 128, seed: 3 };
  const mem = loadSuite(o);
  const packed = loadSuite({ ...o, tasks: [`pack:${small}`, large] });
  assert.deepEqual(packed.tasks.map((t) => t.name), mem.tasks.map((t) => t.name));
  assert.ok(packed.split('train').streamed && !mem.split('train').streamed);
  for (const e of [1]) assertSameEpochs(epochOf(trainLoader(packed, o), e), epochOf(trainLoader(mem, o), e), `train epoch ${e}`);
  // Data parallelism: rank 1 of 2 streams its share of every global batch, equal to the in-memory share.
  const shard = { rank: 1, world: 2 };
  assertSameEpochs(epochOf(trainLoader(packed, o, shard), 0), epochOf(trainLoader(mem, o, shard), 0), 'rank 1 of 2');
  assertSameEpochs(epochOf(evalLoader(packed, o, 'val'), 0), epochOf(evalLoader(mem, o, 'val'), 0), 'val');
  await trainLoader(packed, o).close();
});

test('a decomposition epoch from a raw pack (logit KD, teacher cache on disk) equals the in-memory epoch', { timeout: 180_000 }, async () => {
  const A = path.join(dir, 'a2.npz');
  const B = path.join(dir, 'b3.npz');
  writeTaskNpz(A, { classes: 2, sizes: { train: 30, val: 8, test: 8 }, seed: 1 });
  writeTaskNpz(B, { classes: 3, sizes: { train: 26, val: 8, test: 8 }, seed: 2 });
  const pack = path.join(dir, 'ab');
  await packTasks(pack, loadTasks([A, B]), { storage: 'raw' });
  const data = { tasks: [A, B], input: 24, batch: 8, seed: 4 };
  const suite = loadSuite(data);
  manualSeed(2);
  const net = createModel('resnet18', { numClasses: suite.totalClasses });
  const teacher = path.join(dir, 'foundation.safetensors');
  saveFoundation(teacher, net, { model: 'resnet18', tasks: suite.tasks.map((t) => ({ name: t.name, classNames: t.classNames.slice() })), input: 24, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  net.dispose();
  const base: DecomposeOptions = { ...data, model: 'shufflenet_v2_x0_5', rank: 2, alpha: 4, beta: 1, kd: 'logits', strategy: 'fused', epochs: 1, lr: 0.01, momentum: 0.9, weightDecay: 1e-4, foundation: teacher, out: '', progress: quiet };
  const m = await trainDecomposition({ ...base, out: path.join(dir, 'dec-mem') });
  const p = await trainDecomposition({ ...base, tasks: [`pack:${pack}`], out: path.join(dir, 'dec-pack') });
  assert.equal(p.result.history[0]!.loss, m.result.history[0]!.loss);
  for (const [k, v] of m.dm.stateDict()) assert.deepEqual(p.dm.stateDict().get(k)!.toNumbers(), v.toNumbers(), `${k} differs`);
  m.dm.dispose();
  p.dm.dispose();
});

test('a JPEG pack: rows cropped to the input; the random crop is a function of (seed, epoch, index); evaluation takes the centre', { timeout: 120_000 }, async () => {
  const A = path.join(dir, 'j2.npz');
  writeTaskNpz(A, { classes: 2, sizes: { train: 24, val: 6, test: 6 }, rgb: true, seed: 5 });
  const pack = path.join(dir, 'jpeg');
  await packTasks(pack, loadTasks([A]), { storage: 'jpeg', quality: 95 });
  const o = { tasks: [pack], input: 20, batch: 8, seed: 1 };
  const suite = loadSuite(o);
  assert.equal(suite.split('train').height, 20, 'rows are delivered at the input size');
  const e0 = epochOf(trainLoader(suite, o), 0);
  assertSameEpochs(epochOf(trainLoader(loadSuite(o), o), 0), e0, 'the same crops again');
  const e1 = epochOf(trainLoader(suite, o), 1);
  assert.notDeepEqual(e1.map((b) => b.rows), e0.map((b) => b.rows));
  // Evaluation at the stored size: the centre of a square image is all of it, decoded as stored.
  const full = { ...o, input: 28 };
  const test0 = epochOf(evalLoader(loadSuite(full), full, 'test'), 0)[0]!;
  const p = openPack(pack);
  const ref = await decodeJpeg(p.readBytes(p.record(0, 'test', 0)));
  const x = Float32Array.from(ref.data.subarray(0, 28 * 28), (v) => (v / 255 - 0.5) / 0.5);
  const y = new Float32Array(test0.images.buffer, test0.images.byteOffset, 3 * 28 * 28);
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  assert.ok(worst <= 2 / 127.5 + 1e-6, `centre crop at the stored size is the stored image (max diff ${worst})`);
});

test('a truncated shard is one line naming it', { timeout: 60_000 }, async () => {
  const A = path.join(dir, 't2.npz');
  writeTaskNpz(A, { classes: 2, sizes: { train: 12, val: 4, test: 4 }, seed: 7 });
  const pack = path.join(dir, 'trunc');
  await packTasks(pack, loadTasks([A]), { storage: 'raw' });
  truncateSync(path.join(pack, 'shards', '000000.shard'), 100);
  const o = { tasks: [pack], input: 28, batch: 4, seed: 0 };
  assert.throws(() => [...trainLoader(loadSuite(o), o).epoch(0)], (e: Error) => e instanceof UserError && /000000\.shard: shard is truncated/.test(e.message) && !e.message.includes('\n'));
});

test("analyze's probe set from a pack holds the in-memory task's first test rows", { timeout: 60_000 }, async () => {
  const A = path.join(dir, 'p2.npz');
  writeTaskNpz(A, { classes: 2, sizes: { train: 6, val: 4, test: 9 }, rgb: true, seed: 9 });
  const pack = path.join(dir, 'probe');
  await packTasks(pack, loadTasks([A]), { storage: 'raw' });
  const [m] = probeSet(loadTasks([A]), 5);
  const [p] = probeSet(loadTasks([`pack:${pack}`]), 5);
  assert.equal(p!.splits.test.pack, undefined, 'read into memory');
  assert.deepEqual(Array.from(p!.splits.test.labels), Array.from(m!.splits.test.labels));
  assert.ok(Buffer.from(p!.splits.test.images).equals(Buffer.from(m!.splits.test.images)));
});
