// The teacher cache on disk (src/experiments/teacher-cache.ts): rows equal the teacher's outputs
// for each view; a fill killed in a child process continues where it stopped and ends byte-equal to
// an uninterrupted fill; a complete cache is reused without running the teacher; the standardised
// rows equal an independent computation over the whole table; float16 rows round to the float32 ones.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTaskNpz } from './helpers/pipeline.js';
import { fillCache, withBatch, type FillArgs } from './helpers/teacher-fill.js';
import { manualSeed, setNumThreads, tensor, tidy } from '../src/tensor/index.js';
import { createModel } from '../src/models/index.js';
import { saveFoundation } from '../src/experiments/foundation-file.js';
import { openTeacherFile } from '../src/experiments/teacher/index.js';
import { teacherOutputs, type CacheRecord } from '../src/experiments/teacher-cache.js';
import { loadSuite, trainLoader } from '../src/experiments/data-options.js';
import { makeBatch } from '../src/data/index.js';
import { RunDir } from '../src/experiments/run-dir.js';
import { createProgress } from '../src/experiments/progress.js';
import type { ProcessGroup } from '../src/dist/index.js';

setNumThreads(1);
const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-teacher-cache-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = path.join(dir, 'a2.npz');
const B = path.join(dir, 'b3.npz');
writeTaskNpz(A, { classes: 2, sizes: { train: 14, val: 4, test: 4 }, seed: 1 });
writeTaskNpz(B, { classes: 3, sizes: { train: 11, val: 4, test: 4 }, seed: 2 });
const tasks = [A, B];
const suite = loadSuite({ tasks });
const N = suite.split('train').n; // 25: chunks of 8 rows do not divide it
manualSeed(3);
const net = createModel('resnet18', { numClasses: 5 });
const TEACHER = path.join(dir, 'foundation.safetensors');
saveFoundation(TEACHER, net, { model: 'resnet18', tasks: suite.tasks.map((t) => ({ name: t.name, classNames: t.classNames.slice() })), input: 20, mean: [0.4, 0.5, 0.6], std: [0.2, 0.25, 0.3] });
net.dispose();
const HELPER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers', 'teacher-fill.js');
const quiet = createProgress({ quiet: true });

const cacheFiles = (out: string): Map<string, Buffer> => new Map(readdirSync(out).filter((f) => f.startsWith('teacher-cache-')).map((f) => [f, readFileSync(path.join(out, f))]));
const record = (out: string): CacheRecord => JSON.parse(readFileSync(path.join(out, readdirSync(out).find((f) => f.startsWith('teacher-cache-') && f.endsWith('.json'))!), 'utf8')) as CacheRecord;
const child = (a: FillArgs) => spawnSync(process.execPath, [HELPER, JSON.stringify(a)], { encoding: 'utf8' });

test('a fill killed in a child process continues where it stopped and ends byte-equal to an uninterrupted fill', { timeout: 120_000 }, async () => {
  const whole = path.join(dir, 'whole');
  await fillCache({ tasks, teacher: TEACHER, out: whole, batch: 8 });
  const killed = path.join(dir, 'killed');
  const r = child({ tasks, teacher: TEACHER, out: killed, batch: 8, killAfter: 3 });
  assert.equal(r.signal, 'SIGKILL', r.stderr);
  assert.equal(record(killed).filled, 24, 'three chunks of 8 rows were recorded before the kill');
  assert.equal(record(killed).stats, null);
  const again = child({ tasks, teacher: TEACHER, out: killed, batch: 8 });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, new RegExp(`continuing the fill of teacher-cache-\\w+ from row 24 of ${2 * N}`));
  const a = cacheFiles(whole);
  const b = cacheFiles(killed);
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
  assert.equal(a.size, 3, 'features, logits and the record');
  for (const [f, bytes] of a) assert.ok(bytes.equals(b.get(f)!), `${f} differs`);
  assert.equal(record(killed).filled, 2 * N);
});

test('rows equal the teacher on each view; a complete cache is reused; standardised rows and float16 rows check out', { timeout: 120_000 }, async () => {
  const out = path.join(dir, 'rows');
  const opened = await openTeacherFile(TEACHER, {}, suite.totalClasses, ['features', 'logits']);
  const t = withBatch(opened, 8);
  t.place('cpu', true);
  const loader = trainLoader(suite, { tasks, input: 16, batch: 8, seed: 0 });
  const run = RunDir.open(out, { resume: true, marker: '-' });
  const cache = await teacherOutputs(t, loader, run, quiet, { commitMs: 0 });
  // The teacher itself on rows 3, 20 (view 0) and N + 5 (the flipped view of sample 5), as one batch.
  const b = makeBatch(suite.split('train'), Int32Array.from([3, 20, 5]), Uint8Array.from([0, 0, 1]), { size: 20, mean: [0.4, 0.5, 0.6], std: [0.2, 0.25, 0.3] });
  const ref = await t.forward(b.images);
  b.dispose();
  const rows = [3, 20, N + 5];
  const diff = (x: Float32Array | ArrayLike<number>, y: ArrayLike<number>): number => Math.max(...Array.from(x, (v, i) => Math.abs(v - y[i]!)));
  const got = tidy(() => cache.features!.read(rows).toArray() as Float32Array);
  assert.ok(diff(got, ref.features!.toArray() as Float32Array) < 1e-5);
  assert.ok(diff(tidy(() => cache.logits!.rows(tensor(BigInt64Array.from(rows, BigInt), [3], { dtype: 'int64' })).toArray() as Float32Array), ref.logits!.toArray() as Float32Array) < 1e-5);
  ref.features!.dispose();
  ref.logits!.dispose();
  // Standardised rows against the whole table standardised by libtorch.
  const all = cache.features!.all();
  const z = tidy(() => all.sub(all.mean(0, true)).div(all.var(0, 0, true).add(1e-5).sqrt()).indexSelect(0, tensor(BigInt64Array.from(rows, BigInt), [3], { dtype: 'int64' })).toArray() as Float32Array);
  all.dispose();
  const std = cache.standardised()!;
  assert.ok(diff(tidy(() => std.read(rows).toArray() as Float32Array), z) < 1e-3);
  cache.dispose();
  // Reused: the teacher is not run again.
  const logs: string[] = [];
  const again = await teacherOutputs(t, loader, run, { ...quiet, log: (s: string) => logs.push(s), start: () => assert.fail('the teacher ran again') }, { commitMs: 0 });
  assert.match(logs.join('\n'), /outputs from cache/);
  again.dispose();
  // float16 rows: another run directory, each value the float32 value rounded to half precision.
  const half = await teacherOutputs(t, loader, RunDir.open(path.join(dir, 'half'), { resume: true, marker: '-' }), quiet, { dtype: 'float16' });
  const full = await teacherOutputs(t, loader, run, quiet);
  const h = tidy(() => half.logits!.all().toArray() as Float32Array);
  const f = tidy(() => full.logits!.all().to('float16').float().toArray() as Float32Array);
  assert.equal(diff(h, f), 0);
  half.dispose();
  full.dispose();
  await opened.dispose();
});

test('data parallelism: rank 1 waits for rank 0 (another process) to fill the cache in its run directory and reads those files', { timeout: 120_000 }, async () => {
  const shared = path.join(dir, 'rank0');
  const own = path.join(dir, 'rank1');
  const rank0 = spawn(process.execPath, [HELPER, JSON.stringify({ tasks, teacher: TEACHER, out: shared, batch: 8 })], { stdio: 'ignore' });
  const opened = await openTeacherFile(TEACHER, {}, suite.totalClasses, ['features', 'logits']);
  const t = withBatch(opened, 8);
  t.place('cpu', true);
  const logs: string[] = [];
  const group = { rank: 1, env: { timeoutS: 60 } } as unknown as ProcessGroup; // only its rank and timeout are read
  const cache = await teacherOutputs(t, trainLoader(suite, { tasks, input: 16, batch: 8, seed: 0 }), RunDir.open(own, { resume: true, marker: '-' }), { ...quiet, log: (l: string) => logs.push(l), start: () => assert.fail('rank 1 ran the teacher') }, { share: { group, sharedOut: shared } });
  const [code] = (await once(rank0, 'exit')) as [number];
  assert.equal(code, 0);
  assert.equal(path.dirname(cache.file), shared, "rank 1 reads rank 0's files");
  assert.equal(readdirSync(own).filter((f) => f.startsWith('teacher-cache-')).length, 0, 'nothing copied');
  const whole = path.join(dir, 'whole');
  const mine = tidy(() => cache.logits!.all().toArray() as Float32Array);
  const ref = readFileSync(path.join(whole, readdirSync(whole).find((f) => f.endsWith('.logits.bin'))!));
  assert.ok(Buffer.from(mine.buffer, mine.byteOffset, mine.byteLength).equals(ref), 'the rows of an uninterrupted fill');
  cache.dispose();
  await opened.dispose();
});
