// Numbers a user can reproduce: the demo's training configuration (resnet18 foundation, LoRKD with
// feature KD and the demo's EKS strategy, flips, the prefetch worker) run twice with one seed, on
// 2 libtorch threads as on a 2-core machine, writes bit-identical weights. A run with another EKS
// strategy writes different bits: why `auto`, which picks a strategy by timing it, is not the demo's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeTaskNpz, lorkdOk, differingTensors } from './helpers/pipeline.js';
import { DEMO_STRATEGY } from '../src/experiments/demo.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-repro-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = path.join(dir, 'grey2.npz');
const B = path.join(dir, 'rgb3.npz');
const THREADS = { LORKD_NUM_THREADS: '2', OMP_NUM_THREADS: '2' };
const DATA = ['--input', '16', '--batch', '16', '--seed', '7', '--epochs', '1', '--quiet'];
const foundation = (out: string) => lorkdOk(['foundation', '--tasks', `${A},${B}`, ...DATA, '--arch', 'resnet18', '--out', out], THREADS);
const decompose = (out: string, f: string, strategy: string) =>
  lorkdOk(['decompose', '--tasks', `${A},${B}`, ...DATA, '--foundation', f, '--kd', 'feature', '--strategy', strategy, '--out', out], THREADS);

before(() => {
  writeTaskNpz(A, { classes: 2, sizes: { train: 40, val: 16, test: 16 }, seed: 11 });
  writeTaskNpz(B, { classes: 3, sizes: { train: 40, val: 16, test: 16 }, rgb: true, seed: 12 });
});

test(`two runs of one seed (2 threads, strategy ${DEMO_STRATEGY}) write identical foundation and decomposition weights; another strategy does not`, { timeout: 600_000 }, () => {
  const runs = ['a', 'b'].map((k) => path.join(dir, k));
  for (const r of runs) foundation(r);
  const f = (r: string) => path.join(r, 'foundation.safetensors');
  assert.deepEqual(differingTensors(f(runs[0]!), f(runs[1]!)), [], 'foundations differ');
  for (const r of runs) decompose(r, f(runs[0]!), DEMO_STRATEGY);
  const d = (r: string) => path.join(r, 'decomposition.safetensors');
  assert.deepEqual(differingTensors(d(runs[0]!), d(runs[1]!)), [], 'decompositions differ');
  const other = path.join(dir, 'gathered');
  decompose(other, f(runs[0]!), 'gathered');
  const diff = differingTensors(d(runs[0]!), d(other));
  assert.ok(diff.length > 10, `the gathered strategy's weights are other bits (${diff.length} tensors differ)`);
});
