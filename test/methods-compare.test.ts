// lorkd compare on a tiny suite with every registered method and two seeds: killed with SIGKILL
// after its first runs and continued (finished runs are read back, not retrained); compare.json
// follows the schema (per-task mean, t interval and runs; paired differences vs LoRKD, checked
// against the formulas here); every method's deployed networks give the accuracy of its
// training-time model; parameter counts relate as the paper's (STL = T MTL, one backbone deployed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeTaskNpz, lorkdOk, lorkdSpawn, lastJson } from './helpers/pipeline.js';
import { comparableMethods } from '../src/experiments/methods/index.js';
import { estimate, pairedDifference, t975 } from '../src/experiments/stats.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-compare-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = path.join(dir, 'grey2.npz');
const B = path.join(dir, 'rgb3.npz');
const OUT = path.join(dir, 'cmp');
const ARGS = [
  'compare', '--tasks', `${A},${B}`, '--methods', 'all', '--seeds', '0,1', '--epochs', '1', '--input', '16', '--batch', '12',
  '--model', 'shufflenet_v2_x0_5', '--foundation-arch', 'shufflenet_v2_x0_5', '--strategy', 'fused', '--out', OUT,
];

before(() => {
  writeTaskNpz(A, { classes: 2, sizes: { train: 24, val: 12, test: 16 }, seed: 1 });
  writeTaskNpz(B, { classes: 3, sizes: { train: 24, val: 12, test: 16 }, rgb: true, seed: 2 });
});

interface Est {
  mean: number;
  ci95: [number, number] | null;
  runs: number[];
}
interface Summary {
  params_training: number;
  params_deployment: number;
  per_task: Record<string, { accuracy: Est; auc: Est; vs_lorkd?: Est }>;
  mean_accuracy: Est;
  vs_lorkd?: Est;
  runs: string[];
}
interface Result {
  tasks: string[];
  seeds: number[];
  methods: Record<string, Summary>;
}
interface Run {
  per_task: { accuracy: number }[];
  restricted: { accuracy: number }[] | null;
  deployed: { accuracy: number }[];
  deployed_files: string[];
}

const mtime = (f: string) => statSync(f).mtimeMs;

test('stats: the t interval and paired differences against the formula', () => {
  const e = estimate([0.5, 0.7, 0.6]);
  const s = Math.sqrt(((0.5 - 0.6) ** 2 + (0.7 - 0.6) ** 2 + 0) / 2);
  assert.ok(Math.abs(e.mean - 0.6) < 1e-12);
  assert.ok(Math.abs(e.ci95![1] - (0.6 + (4.303 * s) / Math.sqrt(3))) < 1e-12);
  assert.equal(estimate([0.4]).ci95, null);
  assert.deepEqual(pairedDifference([0.5, 0.9], [0.25, 0.5]).runs, [0.25, 0.4]);
  assert.equal(t975(1), 12.706);
});

test('compare: every method, killed with SIGKILL and continued, schema, deployed = training-time accuracy', async () => {
  // 1. Kill it once the first run (seed 0's foundation) is finished.
  const p = lorkdSpawn(ARGS);
  const first = path.join(OUT, 'runs', 'foundation-s0', 'result.json');
  const deadline = Date.now() + 300_000;
  let code: number | null | undefined;
  void p.exited.then((c) => (code = c));
  while (!/\[compare\] 2\//.test(p.stderr())) {
    if (code !== undefined) assert.fail(`compare exited (${code}) early:\n${p.stderr()}`);
    if (Date.now() > deadline) p.child.kill('SIGKILL'), assert.fail(`no progress:\n${p.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  p.child.kill('SIGKILL');
  await p.exited;
  assert.ok(existsSync(first), 'the first run finished before the kill');
  assert.ok(!existsSync(path.join(OUT, 'compare.json')));
  const before = mtime(first);

  // 2. Continue: the finished run is read back, the rest run.
  const r = lorkdOk([...ARGS, '--json']);
  assert.match(r.stderr, /foundation-s0\/result\.json: finished, not retrained/);
  assert.equal(mtime(first), before, 'the finished run was not rewritten');
  const out = lastJson<Result>(r.stdout);
  assert.deepEqual(JSON.parse(readFileSync(path.join(OUT, 'compare.json'), 'utf8')).methods, out.methods);
  assert.deepEqual(out.tasks, ['grey2', 'rgb3']);
  assert.deepEqual(out.seeds, [0, 1]);
  assert.deepEqual(Object.keys(out.methods).sort(), comparableMethods().slice().sort());

  const lorkd = out.methods.lorkd!;
  for (const [name, m] of Object.entries(out.methods)) {
    assert.equal(m.runs.length, 2, name);
    const runs = m.runs.map((d) => JSON.parse(readFileSync(path.join(d, 'result.json'), 'utf8')) as Run);
    out.tasks.forEach((t, i) => {
      const acc = m.per_task[t]!.accuracy;
      assert.deepEqual(acc.runs, runs.map((x) => x.per_task[i]!.accuracy), `${name} ${t}: runs`);
      const mean = (acc.runs[0]! + acc.runs[1]!) / 2;
      const half = (12.706 * Math.abs(acc.runs[0]! - acc.runs[1]!)) / Math.sqrt(2) / Math.sqrt(2);
      assert.ok(Math.abs(acc.mean - mean) < 1e-12 && Math.abs(acc.ci95![0] - (mean - half)) < 1e-9, `${name} ${t}: interval`);
    });
    if (name !== 'lorkd') assert.deepEqual(m.vs_lorkd!.runs.map((v) => +v.toFixed(12)), m.mean_accuracy.runs.map((v, s) => +(v - lorkd.mean_accuracy.runs[s]!).toFixed(12)), `${name}: paired`);
    // Per task too: the task's accuracy minus LoRKD's on it, seed by seed (LoRKD has none against itself).
    out.tasks.forEach((t) => {
      const vs = m.per_task[t]!.vs_lorkd;
      if (name === 'lorkd') assert.equal(vs, undefined);
      else assert.deepEqual(vs!.runs.map((v) => +v.toFixed(12)), m.per_task[t]!.accuracy.runs.map((v, s) => +(v - lorkd.per_task[t]!.accuracy.runs[s]!).toFixed(12)), `${name} ${t}: paired`);
    });
    // Deployed networks (files written, one per task) give the training-time model's accuracy.
    for (const x of runs) {
      assert.equal(x.deployed_files.length, 2);
      x.deployed_files.forEach((f) => assert.ok(existsSync(f), f));
      assert.deepEqual(x.deployed.map((d) => d.accuracy), (x.restricted ?? x.per_task).map((d) => d.accuracy), `${name}: deployed accuracy`);
    }
  }
  const M = out.methods;
  assert.equal(M.stl!.params_training, 2 * M.mtl!.params_training, 'STL trains T backbones');
  for (const k of ['stl', 'mtl', 'stl-kd', 'mtl-kd', 'lorkd']) assert.equal(M[k]!.params_deployment, M.mtl!.params_training, `${k} deploys one backbone`);
  assert.ok(M.lorkd!.params_training > M.mtl!.params_training, 'LoRKD trains the experts too');

  // 3. Once more: nothing is retrained.
  const again = lorkdOk([...ARGS, '--json']);
  assert.doesNotMatch(again.stderr, /epoch 1\/1/);
  assert.deepEqual(lastJson<Result>(again.stdout).methods, out.methods);
});
