// lorkd compare --transfer: every compared method's deployed network of --transfer-task, LoRKD's
// shared backbone and the Baseline are fine-tuned on the downstream set (Table 2), once per spec,
// each spec in OUT/transfer/<tag>/; a re-run reads the finished transfers back; bad transfer
// settings are refused before any training.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
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
  spec: string;
  result: { source: { kind: string; file: string | null }; data: { classes: string[]; test: number }; shots: number; runs: { seed: number; accuracy: number; n_train: number; n_test: number }[] };
}

test('compare --transfer fine-tunes each method\'s deployed network, the dagger and the Baseline, and resumes', { timeout: 240_000 }, () => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'lorkd-ct-'));
  try {
    const args = ['compare', '--methods', 'mtl,lorkd', '--seeds', '0', '--tasks', 'breastmnist,pneumoniamnist', '--epochs', '1', '--input', '28', '--kd', 'none',
      '--transfer', 'data/mednist:shots=5:epochs=2', '--transfer', 'data/mednist:shots=2:epochs=1:lr=0.001', '--transfer-task', 'pneumoniamnist', '--out', out, '--json', '--quiet'];
    const r = lorkd(args);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { transfer: Transfer[] };
    // Each method's network, then LoRKD's shared backbone (the dagger) and the Baseline from scratch (Table 2's rows).
    const labels = ['mtl', 'lorkd', 'lorkd-dagger', 'baseline'];
    assert.deepEqual(j.transfer.map((t) => `${t.spec}/${t.label}`), [...labels.map((l) => `mednist-k5-e2/${l}`), ...labels.map((l) => `mednist-k2-e1-lr0.001/${l}`)]);
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
      assert.equal(run.n_train, (t.spec.startsWith('mednist-k5') ? 5 : 2) * 6);
      assert.equal(run.n_test, t.result.data.test);
      assert.ok(run.accuracy >= 0 && run.accuracy <= 1);
      const onDisk = JSON.parse(readFileSync(path.join(out, 'transfer', t.spec, t.label, 'transfer.json'), 'utf8')) as Transfer['result'];
      assert.equal(onDisk.runs[0]!.accuracy, run.accuracy);
    }
    // A second compare reads the finished runs and transfers back: the same numbers.
    const again = lorkd(args);
    assert.equal(again.status, 0, again.stderr);
    const k = JSON.parse(again.stdout.trim().split('\n').at(-1)!) as { transfer: Transfer[] };
    assert.deepEqual(k.transfer.map((t) => t.result.runs[0]!.accuracy), j.transfer.map((t) => t.result.runs[0]!.accuracy));
    // Bad transfer settings are refused before any training (nothing is written to the fresh --out).
    const fresh = path.join(out, 'fresh');
    const withOut = (a: string[]) => a.map((x, i) => (a[i - 1] === '--out' ? fresh : x));
    const bad = lorkd(withOut(args.map((a, i) => (args[i - 1] === '--transfer-task' ? 'retinamnist' : a))));
    assert.equal(bad.status, 2);
    assert.match(bad.stderr.trim(), /^lorkd: --transfer-task "retinamnist" is not one of breastmnist, pneumoniamnist$/);
    const twice = lorkd(withOut([...args, '--transfer', 'data/mednist:epochs=2:shots=5']));
    assert.equal(twice.status, 2);
    assert.match(twice.stderr.trim(), /^lorkd: --transfer: two specs with the same settings \(mednist-k5-e2\)$/);
    const typo = lorkd(withOut([...args, '--transfer', 'data/mednist:shot=5']));
    assert.equal(typo.status, 2);
    assert.match(typo.stderr.trim(), /unknown key "shot"/);
    assert.equal(existsSync(path.join(fresh, 'runs')), false);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
