// Degenerate data and weights, through the CLI where a user meets them: a one-sample BatchNorm
// batch, splits that are empty or single-class, models with NaN, metadata that is not JSON, eval
// against other tasks, numeric options out of range, runs too big for the machine.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeTaskNpz, lorkdOk } from './helpers/pipeline.js';
import { lorkdMeasured, expectOneLine } from './helpers/hostile.js';
import { BatchNorm2d } from '../src/nn/batchnorm.js';
import { BatchSampler } from '../src/data/sampler.js';
import { randn, tidy } from '../src/tensor/index.js';
import { UserError } from '../src/tensor/errors.js';
import { intOption, numberOption } from '../src/cli/output.js';
import { DecompositionModel } from '../src/lorkd/decomposition.js';
import { backboneShape, decompositionParams } from '../src/eval/param-count.js';
import { estimateDecomposition, checkMemory } from '../src/experiments/resources.js';
import { loadSuite } from '../src/experiments/data-options.js';
import { readDecomposition } from '../src/lorkd/checkpoint.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-hostile-data-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = path.join(dir, 'a.npz');
const B = path.join(dir, 'b.npz');
const RUN = path.join(dir, 'run');
const EXPERT = path.join(dir, 'a-expert.safetensors');
const TINY = ['--input', '16', '--batch', '32', '--quiet'];

before(() => {
  writeTaskNpz(A, { classes: 2, sizes: { train: 64, val: 16, test: 16 }, seed: 1 });
  writeTaskNpz(B, { classes: 3, sizes: { train: 64, val: 16, test: 16 }, rgb: true, seed: 2 });
  lorkdOk(['foundation', '--tasks', `${A},${B}`, ...TINY, '--arch', 'shufflenet_v2_x0_5', '--epochs', '1', '--out', RUN]);
  lorkdOk(['decompose', '--tasks', `${A},${B}`, ...TINY, '--model', 'shufflenet_v2_x0_5', '--kd', 'none', '--foundation', path.join(RUN, 'foundation.safetensors'), '--epochs', '1', '--out', RUN]);
  lorkdOk(['export', '--run', RUN, '--task', 'a', '--out', EXPERT]);
});

/** A copy of a safetensors file with the first float32 value of `tensor` set to `value` and/or metadata fields replaced. */
function patched(src: string, dst: string, o: { tensor?: string; value?: number; metadata?: Record<string, string> }): string {
  const buf = Buffer.from(readFileSync(src));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }> & { __metadata__: Record<string, string> };
  if (o.tensor !== undefined) {
    const e = header[o.tensor]!;
    assert.equal(e.dtype, 'F32');
    buf.writeFloatLE(o.value!, 8 + n + e.data_offsets[0]);
  }
  if (!o.metadata) {
    writeFileSync(dst, buf);
    return dst;
  }
  Object.assign(header.__metadata__, o.metadata);
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeFileSync(dst, Buffer.concat([head, Buffer.from(json), buf.subarray(8 + n)]));
  return dst;
}

test('BatchNorm2d refuses one value per channel in training, as PyTorch does; two values or eval mode are fine', () =>
  tidy(() => {
    const bn = new BatchNorm2d(4);
    bn.train();
    assert.throws(() => bn.forward(randn([1, 4, 1, 1])), (e: unknown) => e instanceof UserError && /expected more than 1 value per channel when training, got input \[1, 4, 1, 1\]/.test(e.message));
    const before = bn.runningVar!.toNumbers();
    assert.deepEqual(bn.runningVar!.toNumbers(), before, 'running statistics untouched');
    assert.ok(bn.forward(randn([2, 4, 1, 1])).isfinite().all().item());
    assert.ok(bn.forward(randn([1, 4, 2, 1])).isfinite().all().item());
    assert.ok(bn.runningVar!.isfinite().all().item());
    bn.eval();
    assert.ok(bn.forward(randn([1, 4, 1, 1])).isfinite().all().item());
    // PyTorch raises for the same input (optional: Debian python3-torch).
    const py = spawnSync('/usr/bin/python3', ['-c', 'import torch\ntry:\n  torch.nn.BatchNorm2d(4).train()(torch.randn(1,4,1,1)); print("ok")\nexcept ValueError as e: print("raised", e)'], { encoding: 'utf8' });
    if (py.status === 0) assert.match(py.stdout, /^raised Expected more than 1 value per channel when training/);
  }));

test('sampler mergeSingleton: a last batch of one joins the batch before it; same seeded order; off by default', () => {
  const flat = (bs: Int32Array[]) => bs.flatMap((b) => Array.from(b));
  const plain = new BatchSampler([5, 7, 4], { batchSize: 3, seed: 9 });
  const merged = new BatchSampler([5, 7, 4], { batchSize: 3, seed: 9, mergeSingleton: true });
  assert.deepEqual(plain.epoch(0).map((b) => b.length), [3, 3, 3, 3, 3, 1]);
  for (const e of [0, 1, 2]) {
    assert.deepEqual(merged.epoch(e).map((b) => b.length), [3, 3, 3, 3, 4]);
    assert.deepEqual(flat(merged.epoch(e)), flat(plain.epoch(e)));
  }
  assert.equal(merged.numBatches, 5);
  // Nothing to merge: a remainder of 2, one batch in all, or batches of one.
  assert.deepEqual(new BatchSampler([5, 6], { batchSize: 3, mergeSingleton: true }).epoch(0).map((b) => b.length), [3, 3, 3, 2]);
  assert.deepEqual(new BatchSampler([1], { batchSize: 3, mergeSingleton: true }).epoch(0).map((b) => b.length), [1]);
  assert.equal(new BatchSampler([4], { batchSize: 1, mergeSingleton: true }).numBatches, 4);
});

test('a training set of 65 images at batch 32 trains (the last image joins the batch before it)', () => {
  const odd = path.join(dir, 'odd.npz');
  writeTaskNpz(odd, { classes: 2, sizes: { train: 65, val: 16, test: 16 }, seed: 5 });
  const r = lorkdMeasured(['foundation', '--tasks', odd, ...TINY, '--arch', 'shufflenet_v2_x0_5', '--epochs', '1', '--out', path.join(dir, 'odd-run')]);
  assert.equal(r.status, 0, r.lines.join('\n'));
});

test('every split is checked when the suite is loaded: the file, the split and the problem', () => {
  const cases: [string, Parameters<typeof writeTaskNpz>[1], RegExp][] = [
    ['notrain.npz', { classes: 2, sizes: { train: 0, val: 8, test: 8 }, seed: 1 }, /notrain\.npz: task 'notrain' has no images in its train split \(nothing to train on\)/],
    ['noval.npz', { classes: 2, sizes: { train: 8, val: 0, test: 8 }, seed: 1 }, /noval\.npz: task 'noval' has no images in its val split/],
    ['notest.npz', { classes: 2, sizes: { train: 8, val: 8, test: 0 }, seed: 1 }, /notest\.npz: task 'notest' has no images in its test split/],
    ['single.npz', { classes: 1, sizes: { train: 8, val: 8, test: 8 }, seed: 1 }, /single\.npz: task 'single' has a single class \('0'\): a classifier needs at least 2/],
  ];
  for (const [name, spec, re] of cases) {
    const file = path.join(dir, name);
    writeTaskNpz(file, spec);
    // In-process: the suite the commands build (one child process below shows the CLI's line).
    assert.throws(() => loadSuite({ tasks: [A, file] }), (e: unknown) => e instanceof UserError && re.test(e.message));
  }
  const out = path.join(dir, 'out-notrain');
  expectOneLine(lorkdMeasured(['foundation', '--tasks', `${A},${path.join(dir, 'notrain.npz')}`, ...TINY, '--epochs', '1', '--out', out]), cases[0]![2]);
  assert.equal(existsSync(out), false);
});

test('model files with NaN or infinity are refused when loaded: foundation, decomposition, expert', () => {
  const f = patched(path.join(RUN, 'foundation.safetensors'), path.join(dir, 'nan-foundation.safetensors'), { tensor: 'conv1.0.weight', value: NaN });
  expectOneLine(
    lorkdMeasured(['decompose', '--tasks', `${A},${B}`, ...TINY, '--model', 'shufflenet_v2_x0_5', '--foundation', f, '--epochs', '1', '--out', path.join(dir, 'never')]),
    /nan-foundation\.safetensors: tensor 'conv1\.0\.weight' holds NaN or infinity \(1 of \d+ values\)/,
  );
  const d = patched(path.join(RUN, 'decomposition.safetensors'), path.join(dir, 'inf-decomposition.safetensors'), { tensor: 'heads.0.weight', value: Infinity });
  assert.throws(() => readDecomposition(d), (x: unknown) => x instanceof UserError && /inf-decomposition\.safetensors: tensor 'heads\.0\.weight' holds NaN or infinity/.test(x.message));
  const e = patched(EXPERT, path.join(dir, 'nan-expert.safetensors'), { tensor: 'fc.weight', value: NaN });
  expectOneLine(lorkdMeasured(['predict', '--model', e, '--input', A]), /nan-expert\.safetensors: tensor 'fc\.weight' holds NaN or infinity/);
  assert.equal(existsSync(path.join(dir, 'never')) || existsSync(path.join(dir, 'never.safetensors')), false);
});

test('numeric options are range-checked with one line naming the option', () => {
  const bad: [(v: string) => number, string, RegExp][] = [
    [intOption('seed', 0), '9007199254740992', /--seed must be an integer >= 0 and <= 9007199254740991/],
    [numberOption('beta'), '-1', /--beta must be a number >= 0/],
    [numberOption('lora-alpha'), '0', /--lora-alpha must be a number > 0/],
    [numberOption('lr'), 'NaN', /--lr must be a number > 0/],
    [numberOption('momentum'), '1', /--momentum must be a number >= 0 and < 1/],
    [intOption('rank'), '10000', /--rank must be an integer >= 1 and <= 1024 \(set LORKD_MAX_RANK to raise the maximum\)/],
    [intOption('input', 8), '100000', /--input must be an integer >= 8 and <= 1024/],
    [intOption('batch'), '1.5', /--batch must be an integer/],
  ];
  for (const [parse, v, re] of bad) assert.throws(() => parse(v), (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n'), `${v}`);
  assert.equal(intOption('seed', 0)('9007199254740991'), Number.MAX_SAFE_INTEGER);
  assert.equal(numberOption('beta')('0'), 0);
  expectOneLine(lorkdMeasured(['decompose', '--tasks', A, '--foundation', 'x', '--beta', '-1', '--out', path.join(dir, 'never')]), /--beta must be a number >= 0/);
});

test('lorkd params --tasks 1000000 counts arithmetically: exact for small T, bounded memory for huge T', () => {
  // The arithmetic count equals the instantiated model's parameters (independent count).
  for (const [model, classes, rank] of [['shufflenet_v2_x1_0', [2, 5, 3], 8], ['resnet18', [4, 2], 3]] as const) {
    const dm = new DecompositionModel({ model, tasks: classes.map((n, i) => ({ name: `t${i}`, classNames: Array.from({ length: n }, String) })), rank, strategy: 'fused' });
    try {
      assert.equal(decompositionParams(backboneShape(model), classes, rank), dm.numParameters());
    } finally {
      dm.dispose();
    }
  }
  const r = lorkdMeasured(['params', '--tasks', '1000000', '--json']);
  assert.equal(r.status, 0, r.lines.join('\n'));
  const j = JSON.parse(r.stdout) as { tasks: number; params_training_with_heads: number };
  assert.equal(j.tasks, 1_000_000);
  assert.equal(j.params_training_with_heads, decompositionParams(backboneShape('shufflenet_v2_x1_0'), new Array(1_000_000).fill(2), 8));
  if (Number.isFinite(r.maxRssMiB)) assert.ok(r.maxRssMiB < 600, `peak RSS ${r.maxRssMiB} MiB`);
});

test('the memory estimate grows with rank, batch and input; a run over the machine is refused with what it needs', () => {
  const base = { model: 'shufflenet_v2_x1_0', classes: [2, 3], rank: 8, batch: 32, input: 64, dataBytes: 1e6, trainImages: 1000 };
  const e = estimateDecomposition(base);
  assert.ok(estimateDecomposition({ ...base, rank: 64 }).bytes > e.bytes);
  assert.ok(estimateDecomposition({ ...base, batch: 64 }).bytes > e.bytes);
  assert.ok(estimateDecomposition({ ...base, input: 128 }).bytes > e.bytes);
  checkMemory(e, 'this run');
  process.env.LORKD_MEMORY_LIMIT = '100M';
  try {
    assert.throws(() => checkMemory(e, 'this run'), (x: unknown) => x instanceof UserError && /^this run needs about [\d.]+ MiB of memory \(.*\), more than the 100 MiB this machine has; lower --batch, --input or --rank \(or set LORKD_MEMORY_LIMIT to override\)$/.test(x.message));
  } finally {
    delete process.env.LORKD_MEMORY_LIMIT;
  }
});

test('foundation metadata that is not JSON, and eval against other tasks: one line each', () => {
  const bad = patched(path.join(RUN, 'foundation.safetensors'), path.join(dir, 'badmeta.safetensors'), { metadata: { tasks: '[{"name": "a", ' } });
  expectOneLine(
    lorkdMeasured(['eval', '--foundation', bad, '--decomposition', path.join(RUN, 'decomposition.safetensors'), '--tasks', `${A},${B}`, ...TINY]),
    /badmeta\.safetensors: bad lorkd metadata "tasks" \(not JSON: /,
  );
  expectOneLine(lorkdMeasured(['eval', '--run', RUN, '--tasks', A, ...TINY]), /foundation\.safetensors was trained on tasks a:2,b:3, not a:2 \(--tasks must list the model's tasks/);
  assert.equal(existsSync(path.join(RUN, 'eval-test.json')), false, 'nothing written');
});

test('a run that cannot fit in memory is refused before anything is built or written', () => {
  const out = path.join(dir, 'too-big');
  const r = lorkdMeasured(['decompose', '--tasks', `${A},${B}`, ...TINY, '--model', 'shufflenet_v2_x0_5', '--rank', '1024', '--kd', 'none', '--foundation', 'unused', '--out', out], { LORKD_MEMORY_LIMIT: '300M' });
  expectOneLine(r, /this decomposition run needs about [\d.]+ MiB of memory \(.*model with 2 rank-1024 experts and optimiser state [\d.]+ MiB.*\), more than the 300 MiB this machine has/);
  assert.ok(r.maxRssMiB < 600 || !Number.isFinite(r.maxRssMiB), `peak RSS ${r.maxRssMiB} MiB`);
  assert.equal(existsSync(out), false);
});
