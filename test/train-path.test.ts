// The one training path (src/experiments/run-method.ts): every method is built from its spec and
// trained by the one trainer, which drives it through its TrainStep. Under data parallelism the
// step hands a single-backward method's loss to DDP's Reducer (the all-reduce overlaps backward),
// while a per-task-backward method is all-reduced once after (a one-process gloo group here).
// `lorkd foundation` and `lorkd decompose` are the same path as `lorkd run`: equal weights.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeTaskNpz, lorkd, lorkdOk, lastJson } from './helpers/pipeline.js';
import { trainMethod, type MethodRunOptions } from '../src/experiments/run-method.js';
import { createProgress } from '../src/experiments/progress.js';
import { ProcessGroup, distAvailable } from '../src/dist/index.js';
import { availableMethods, methodSpec } from '../src/experiments/methods/index.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { methodLabel } from '../src/report/labels.js';
import { countMethodFlops } from '../src/report/flops.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-train-path-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = path.join(dir, 'a2.npz');
const B = path.join(dir, 'b3.npz');
writeTaskNpz(A, { classes: 2, sizes: { train: 24, val: 8, test: 8 }, seed: 1 });
writeTaskNpz(B, { classes: 3, sizes: { train: 24, val: 8, test: 8 }, seed: 2 });
const BASE: Omit<MethodRunOptions, 'method' | 'out'> = {
  tasks: [A, B], input: 16, batch: 16, seed: 0, model: 'shufflenet_v2_x0_5', foundationArch: 'resnet18', rank: 2, alpha: 10, beta: 1, kd: 'none', strategy: 'fused',
  epochs: 1, lr: 0.01, momentum: 0.9, weightDecay: 1e-4, resume: false, progress: createProgress({ quiet: true }),
};

test('every method declares its capabilities; labels and FLOPs kinds come from the specs', () => {
  for (const n of availableMethods()) {
    const s = methodSpec(n);
    assert.equal(s.name, n);
    assert.equal(methodLabel(n), s.label);
    if (s.teacherRequired) assert.ok(s.teacher({ kd: 'none', beta: 0 }).length > 0, `${n} requires a teacher`);
  }
  assert.deepEqual(methodSpec('lorkd').teacher({ kd: 'none', beta: 1 }), []);
  assert.deepEqual(methodSpec('lorkd').teacher({ kd: 'logits', beta: 1 }), ['logits']);
  assert.deepEqual(methodSpec('kf').teacher({ kd: 'feature', beta: 1 }), ['features', 'logits']);
  assert.equal(methodLabel('lorkd-r4'), 'LoRKD (r=4)');
  assert.equal(methodLabel('stl-r4'), 'stl-r4', 'an unranked method has no rank suffix');
  const flops = countMethodFlops([{ key: 'lorkd', method: 'lorkd', rank: 8 }, { key: 'mtl', method: 'mtl', rank: null }, { key: 'kf', method: 'kf', rank: null }], { model: 'shufflenet_v2_x0_5', tasks: 2, input: 32 });
  assert.ok(flops.get('lorkd')![0] > flops.get('lorkd')![1], 'LoRKD trains with its low-rank paths');
  assert.equal(flops.get('mtl')![0], flops.get('lorkd')![1], 'a plain backbone costs what a fused expert does');
  assert.equal(flops.has('kf'), false);
});

test('data parallelism: single-backward methods all-reduce while backward runs, per-task methods once after (one-process group)', { skip: distAvailable() ? false : 'no c10d in this build' }, async () => {
  const group = ProcessGroup.init({ rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1, masterAddr: '127.0.0.1', masterPort: 20000 + Math.floor(Math.random() * 20000), timeoutS: 30, backend: 'gloo', device: 'cpu' });
  const steps = (await trainOnce('lorkd', { group, syncBn: false, sharedOut: dir })).allReduce!;
  assert.ok(steps.overlapped > 0);
  assert.equal(steps.afterBackward, 0, 'LoRKD hands its loss to the Reducer');
  const mtl = (await trainOnce('mtl', { group, syncBn: false, sharedOut: dir })).allReduce!;
  assert.equal(mtl.afterBackward, 0);
  const aligned = (await trainOnce('aligned-mtl', { group, syncBn: false, sharedOut: dir })).allReduce!;
  assert.equal(aligned.overlapped, 0, 'per-task backward passes are all-reduced after');
  assert.equal(aligned.afterBackward, steps.overlapped);
  const off = (await trainOnce('lorkd', { group, syncBn: false, overlap: false, sharedOut: dir })).allReduce!;
  assert.deepEqual(off, { overlapped: 0, afterBackward: steps.overlapped });
  const alone = await trainOnce('lorkd', null);
  assert.equal(alone.allReduce, null);
});

let runs = 0;
async function trainOnce(method: string, dist: MethodRunOptions['dist']) {
  const t = await trainMethod({ ...BASE, method, out: path.join(dir, `ddp-${runs++}`), dist });
  t.dispose();
  return t.result;
}

test('lorkd foundation and lorkd decompose train on the same path as lorkd run: equal weights', { timeout: 300_000 }, async () => {
  const tiny = ['--tasks', `${A},${B}`, '--input', '16', '--batch', '16', '--epochs', '1', '--quiet'];
  lorkdOk(['foundation', ...tiny, '--arch', 'resnet18', '--out', path.join(dir, 'f')]);
  lorkdOk(['run', '--method', 'foundation', ...tiny, '--foundation-arch', 'resnet18', '--out', path.join(dir, 'rf')]);
  sameWeights(path.join(dir, 'f', 'foundation.safetensors'), path.join(dir, 'rf', 'foundation.safetensors'));
  const d = ['--model', 'shufflenet_v2_x0_5', '--rank', '2', '--strategy', 'fused', '--foundation', path.join(dir, 'f', 'foundation.safetensors')];
  lorkdOk(['decompose', ...tiny, ...d, '--out', path.join(dir, 'd')]);
  const r = lorkdOk(['run', '--method', 'lorkd', ...tiny, ...d, '--out', path.join(dir, 'rd'), '--json']);
  sameWeights(path.join(dir, 'd', 'decomposition.safetensors'), path.join(dir, 'rd', 'decomposition.safetensors'));
  assert.equal(lastJson<{ method: string }>(r.stdout).method, 'lorkd');
});

test('lorkd run refuses an option its method does not take, and a teacher a method does not use, in one line', () => {
  const tiny = ['--tasks', `${A},${B}`, '--input', '16', '--epochs', '1', '--quiet'];
  const a = lorkd(['run', '--method', 'stl', '--rank', '4', ...tiny, '--out', path.join(dir, 'x1')]);
  assert.equal(a.status, 2);
  assert.match(a.stderr.trim(), /^lorkd: stl does not take --rank \(it takes only the shared budget\)$/);
  const b = lorkd(['run', '--method', 'mtl', '--foundation', A, ...tiny, '--out', path.join(dir, 'x2')]);
  assert.equal(b.status, 2);
  assert.match(b.stderr.trim(), /^lorkd: mtl does not distil: --foundation does not apply$/);
  const c = lorkd(['run', '--method', 'nope', ...tiny, '--out', path.join(dir, 'x3')]);
  assert.match(c.stderr.trim(), /^lorkd: unknown method "nope"; methods: foundation, stl/);
});

function sameWeights(a: string, b: string): void {
  const x = loadSafetensors(a).tensors;
  const y = loadSafetensors(b).tensors;
  assert.deepEqual([...x.keys()].sort(), [...y.keys()].sort());
  for (const [k, t] of x) assert.deepEqual(t.toArray(), y.get(k)!.toArray(), k);
}

test('--precision bf16 trains and evaluates under autocast and is recorded; fp16 on the CPU and CUDA on a CPU build are one-line refusals', { timeout: 300_000 }, () => {
  const tiny = ['--tasks', `${A},${B}`, '--input', '8', '--batch', '16', '--epochs', '1', '--quiet', '--json'];
  const r = lastJson<{ precision: string; device: string; mean_accuracy: number; history: { loss: number }[] }>(lorkdOk(['run', '--method', 'mtl', '--model', 'shufflenet_v2_x0_5', '--precision', 'bf16', ...tiny, '--out', path.join(dir, 'bf16')]).stdout);
  assert.equal(r.precision, 'bf16');
  assert.equal(r.device, 'cpu');
  assert.ok(Number.isFinite(r.history[0]!.loss) && r.mean_accuracy >= 0);
  const fp16 = lorkd(['run', '--method', 'mtl', '--precision', 'fp16', ...tiny, '--out', path.join(dir, 'fp16')]);
  assert.equal(fp16.status, 2);
  assert.match(fp16.stderr.trim(), /^lorkd: precision fp16 runs on CUDA only/);
  const cuda = lorkd(['decompose', '--kd', 'none', '--device', 'cuda', ...tiny, '--out', path.join(dir, 'cuda')]);
  assert.equal(cuda.status, 2);
  assert.match(cuda.stderr.trim(), /^lorkd: device cuda: this lorkd build has no CUDA/);
});
