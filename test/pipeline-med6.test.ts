// `--tasks med6` (= all) in the commands: foundation and decompose record the six bundled tasks
// (28x28 and 64x64, grey and RGB, in one suite); compare and analyze expand it too (a task listed
// twice beside it is refused before any work). Zero epochs: the suite is built, nothing trained.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lorkd, lorkdOk, readRawSafetensors } from './helpers/pipeline.js';
import { MED6 } from '../src/data/index.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-med6-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const TINY = ['--epochs', '0', '--input', '8', '--quiet', '--out', dir];

test('foundation --tasks med6 and decompose --tasks all build the six-task suite (26 classes)', () => {
  lorkdOk(['foundation', '--tasks', 'med6', ...TINY]);
  const f = JSON.parse(readRawSafetensors(path.join(dir, 'foundation.safetensors')).metadata.tasks!) as { name: string; classNames: string[] }[];
  assert.deepEqual(f.map((t) => t.name), [...MED6]);
  assert.deepEqual(f.map((t) => t.classNames.length), [2, 2, 5, 8, 5, 4]);
  assert.equal(f[3]!.classNames[7], 'platelet', "bloodpbc's names come from its INFO JSON");
  lorkdOk(['decompose', '--tasks', 'all', '--kd', 'none', ...TINY]);
  const d = JSON.parse(readRawSafetensors(path.join(dir, 'decomposition.safetensors')).metadata.config!) as { tasks: { name: string }[] };
  assert.deepEqual(d.tasks.map((t) => t.name), [...MED6]);
});

test('compare and analyze expand med6 too: a task beside it twice is one clear line', () => {
  const cases = [
    ['compare', '--tasks', 'med6,retinamnist', '--methods', 'mtl', '--seeds', '0', ...TINY],
    ['analyze', 'cka', '--models', path.join(dir, 'foundation.safetensors'), '--data', 'retinamnist,all', '--out', dir],
  ];
  for (const args of cases) {
    const r = lorkd(args);
    assert.equal(r.status, 2, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /^lorkd: --tasks: 'retinamnist' appears twice \(.*= breastmnist,pneumoniamnist,retinamnist,bloodpbc,kneeoa,braintumor\)\n$/);
  }
});
