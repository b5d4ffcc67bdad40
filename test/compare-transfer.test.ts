// lorkd compare --transfer: every compared method's deployed network of --transfer-task is
// fine-tuned on the downstream set (Table 2); a re-run reads the finished transfers back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.resolve(here, '../../bin/lorkd.js');
const root = path.resolve(here, '../..');

function lorkd(args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, LORKD_NUM_THREADS: '1' } });
}

interface Transfer {
  label: string;
  result: { source: { kind: string; file: string | null }; data: { classes: string[]; test: number }; shots: number; runs: { seed: number; accuracy: number; n_train: number; n_test: number }[] };
}

test('compare --transfer fine-tunes each method\'s deployed network, the dagger and the Baseline, and resumes', { timeout: 240_000 }, () => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'lorkd-ct-'));
  try {
    const args = ['compare', '--methods', 'mtl,lorkd', '--seeds', '0', '--tasks', 'breastmnist,pneumoniamnist', '--epochs', '1', '--input', '28', '--kd', 'none',
      '--transfer', 'data/mednist:shots=5:epochs=2', '--transfer-task', 'pneumoniamnist', '--out', out, '--json', '--quiet'];
    const r = lorkd(args);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { transfer: Transfer[] };
    // Each method's network, then LoRKD's shared backbone (the dagger) and the Baseline from scratch (Table 2's rows).
    assert.deepEqual(j.transfer.map((t) => t.label), ['mtl', 'lorkd', 'lorkd-dagger', 'baseline']);
    const from: Record<string, [string, string | null]> = {
      mtl: ['expert', path.join(out, 'runs', 'mtl-s0', 'deployed', 'pneumoniamnist.safetensors')],
      lorkd: ['expert', path.join(out, 'runs', 'lorkd-s0', 'deployed', 'pneumoniamnist.safetensors')],
      'lorkd-dagger': ['backbone', path.join(out, 'runs', 'lorkd-s0', 'decomposition.safetensors')],
      baseline: ['scratch', null],
    };
    for (const t of j.transfer) {
      assert.deepEqual([t.result.source.kind, t.result.source.file], from[t.label], t.label);
      assert.equal(t.result.data.classes.length, 6);
      const run = t.result.runs[0]!;
      assert.equal(run.n_train, 5 * 6);
      assert.equal(run.n_test, t.result.data.test);
      assert.ok(run.accuracy >= 0 && run.accuracy <= 1);
      const onDisk = JSON.parse(readFileSync(path.join(out, 'transfer', t.label, 'transfer.json'), 'utf8')) as Transfer['result'];
      assert.equal(onDisk.runs[0]!.accuracy, run.accuracy);
    }
    // A second compare reads the finished runs and transfers back: the same numbers.
    const again = lorkd(args);
    assert.equal(again.status, 0, again.stderr);
    const k = JSON.parse(again.stdout.trim().split('\n').at(-1)!) as { transfer: Transfer[] };
    assert.deepEqual(k.transfer.map((t) => t.result.runs[0]!.accuracy), j.transfer.map((t) => t.result.runs[0]!.accuracy));
    const bad = lorkd(args.map((a, i) => (args[i - 1] === '--transfer-task' ? 'retinamnist' : a)));
    assert.equal(bad.status, 2);
    assert.match(bad.stderr.trim(), /^lorkd: --transfer-task "retinamnist" is not one of breastmnist, pneumoniamnist$/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
