// Params and FLOPs the paper's way (Tables 1 and 4): complexity() reproduces the published
// numbers, `lorkd params --json` prints them, and the expert count matches a hand derivation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { complexity } from '../src/eval/complexity.js';
import { Conv2d } from '../src/nn/index.js';
import { createModel } from '../src/models/index.js';
import { DecompositionModel, type TaskSpec } from '../src/lorkd/index.js';

const M = (n: number): string => (n / 1e6).toFixed(2);
const tasks = (T: number): TaskSpec[] => Array.from({ length: T }, (_, i) => ({ name: `t${i}`, classNames: ['a', 'b'] }));
// torchvision's shufflenet_v2_x1_0 has 2,278,604 parameters, 1,025,000 of them in its 1000-class fc.
const TORCHVISION_BACKBONE = 2_278_604 - 1_025_000;

test('RadImageNet, 11 tasks: Params(training) 1.73 / 2.21 / 3.16 M at r = 4 / 8 / 16; deployment 1.25 M, 0.15 GFLOPs', () => {
  const want: Record<number, string> = { 4: '1.73', 8: '2.21', 16: '3.16' };
  for (const r of [4, 8, 16]) {
    const c = complexity({ tasks: 11, rank: r });
    assert.equal(M(c.params_training), want[r], `r = ${r}`);
    assert.equal(M(c.params_deployment), '1.25');
    assert.equal(c.params_deployment, TORCHVISION_BACKBONE);
    assert.equal((c.flops_deployment / 1e9).toFixed(2), '0.15');
    assert.ok(c.params_training_with_heads === c.params_training + 11 * (1024 * 2 + 2));
    assert.ok(c.flops_training > c.flops_deployment);
  }
});

test('MedMNIST settings at r = 8: 10 tasks 2.12 M, 8 tasks 1.95 M', () => {
  assert.equal(M(complexity({ tasks: 10, rank: 8 }).params_training), '2.12');
  assert.equal(M(complexity({ tasks: 8, rank: 8 }).params_training), '1.95');
});

test('hand derivation: Params(training) - Params(deployment) = T r sum_convs k^2 (Cin + Cout); the expert FLOPs likewise', () => {
  const T = 11;
  const r = 8;
  const c = complexity({ tasks: T, rank: r });
  const dm = new DecompositionModel({ tasks: tasks(T), rank: r, strategy: 'fused' });
  const convs = dm.expertConvs();
  // Every non-depthwise conv of the plain backbone carries experts: 37 in ShuffleNetV2 1.0x.
  const plain = createModel('shufflenet_v2_x1_0');
  const plainConvs = plain.namedModules().filter(([, m]) => m instanceof Conv2d && m.groups === 1).map(([n]) => n);
  assert.equal(convs.length, 37);
  assert.deepEqual(convs.map(([n]) => n), plainConvs);
  let perTaskPerRank = 0;
  let expertMacs = 0;
  for (const [name, e] of convs) {
    const k = e.kernelSize;
    perTaskPerRank += k * k * (e.inChannels + e.outChannels);
    // Output side at 224: stem 112; stage s runs at 28 / 14 / 7, except the first 1x1 of its
    // downsampling block's branch2, which runs before the stride-2 depthwise conv; conv5 at 7.
    const stage = /^stage(\d)\.(\d+)\.branch(\d)\.(\d)$/.exec(name);
    let side = 7;
    if (name === 'conv1.0') side = 112;
    else if (stage) {
      side = { 2: 28, 3: 14, 4: 7 }[Number(stage[1]) as 2 | 3 | 4];
      if (stage[2] === '0' && stage[3] === '2' && stage[4] === '0') side *= 2;
    } else assert.equal(name, 'conv5.0');
    expertMacs += side * side * (k === 1 ? r * (e.inChannels + e.outChannels) : e.outChannels * e.inChannels * k * k);
  }
  assert.equal(c.params_training - c.params_deployment, T * r * perTaskPerRank);
  assert.equal(c.flops_training - c.flops_deployment, expertMacs);
  dm.dispose();
  plain.dispose();
});

test('lorkd params --tasks 11 --rank 8 --json prints the counts as numbers', () => {
  const bin = fileURLToPath(new URL('../../bin/lorkd.js', import.meta.url));
  const r = spawnSync(process.execPath, [bin, 'params', '--tasks', '11', '--rank', '8', '--json'], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, LORKD_NUM_THREADS: '1' },
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, unknown>;
  const keys = ['params_training', 'params_training_with_heads', 'params_deployment', 'flops_training', 'flops_deployment'];
  for (const k of keys) assert.equal(typeof out[k], 'number', `${k} is ${typeof out[k]}`);
  const c = complexity({ tasks: 11, rank: 8 });
  for (const k of keys) assert.equal(out[k], c[k as keyof typeof c], k);
  assert.equal(M(out.params_training as number), '2.21');
});
