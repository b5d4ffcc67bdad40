// lorkd bench infer at a tiny size: every row has the fields issue 22 asks for, lorkd's logits equal
// onnxruntime's on the exported file, and with --rounds each engine's figure is the median of its
// alternating rounds (the EKS row's ratio too). Timings themselves are not asserted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchInfer } from '../bench/infer.js';
import { median } from '../bench/rounds.js';
import { lorkd } from './helpers/pipeline.js';

test('median: odd and even counts, unsorted input', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7]), 7);
});

test('bench infer: rows with every field, lorkd equal to onnxruntime, medians of 3 alternating rounds', { timeout: 300_000 }, async () => {
  const r = await benchInfer({ models: ['shufflenet_v2_x1_0'], inputs: [32], batches: [2], threads: [1], seconds: 0.05, minReps: 1, torch: false, eksTasks: 3, rounds: 3 });
  assert.equal(r.rounds, 3);
  assert.equal(r.rows.length, 1);
  const row = r.rows[0]!;
  for (const k of ['model', 'input', 'batch', 'threads', 'lorkd_img_per_s', 'pytorch_img_per_s', 'ort_img_per_s'] as const) assert.ok(k in row, k);
  assert.deepEqual([row.model, row.input, row.batch, row.threads], ['shufflenet_v2_x1_0', 32, 2, 1]);
  assert.equal(row.lorkd_runs.length, 3);
  assert.equal(row.ort_runs!.length, 3);
  assert.ok(Math.abs(row.lorkd_img_per_s - median(row.lorkd_runs)) <= 0.051, `${row.lorkd_img_per_s} is the median of ${row.lorkd_runs}`);
  assert.ok(Math.abs(row.ort_img_per_s! - median(row.ort_runs!)) <= 0.051, `${row.ort_img_per_s} is the median of ${row.ort_runs}`);
  assert.ok(row.max_logit_diff_ort! < 1e-3, `lorkd and onnxruntime run the same network (largest logit difference ${row.max_logit_diff_ort})`);
  assert.equal(r.eks.length, 1);
  const e = r.eks[0]!;
  assert.ok(e.eks_img_per_s > 0 && e.fused_img_per_s > 0);
  assert.ok(Math.abs(e.eks_time_over_fused - e.fused_img_per_s / e.eks_img_per_s) <= 0.011, 'the ratio is of the two medians');
});

test('lorkd bench infer --rounds 0 is refused in one line', () => {
  const r = lorkd(['bench', 'infer', '--rounds', '0', '--json']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr.trim(), /^lorkd: --rounds must be .*got "0"$/);
});
