// Metrics: hand-computed cases (ties included), the rank-statistic AUC against a brute-force
// pairwise count on random data, the macro one-vs-rest average and its skipped classes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accuracy, argmaxRows, auc, binaryAuc, confusionMatrix, oneVsRestAuc } from '../src/eval/metrics.js';
import { UserError } from '../src/tensor/errors.js';
import { lcg } from './helpers/random.js';

/** P(score of a random positive > score of a random negative) + 0.5 P(equal), over all pairs. */
function pairwiseAuc(scores: ArrayLike<number>, positive: ArrayLike<boolean>): number {
  let num = 0;
  let pairs = 0;
  for (let i = 0; i < scores.length; i++) {
    if (!positive[i]) continue;
    for (let j = 0; j < scores.length; j++) {
      if (positive[j]) continue;
      pairs++;
      if (scores[i]! > scores[j]!) num += 1;
      else if (scores[i] === scores[j]) num += 0.5;
    }
  }
  return pairs === 0 ? NaN : num / pairs;
}

const isUserError = (re: RegExp) => (e: unknown) => e instanceof UserError && re.test(e.message);

test('accuracy: hand cases, empty is NaN, length mismatch refused', () => {
  assert.equal(accuracy([0, 1, 2, 1], [0, 1, 1, 1]), 0.75);
  assert.equal(accuracy(Int32Array.from([3]), [3]), 1);
  assert.equal(accuracy([1, 1], [0, 0]), 0);
  assert.ok(Number.isNaN(accuracy([], [])));
  assert.throws(() => accuracy([0], [0, 1]), isUserError(/1 predictions for 2 labels/));
});

test('argmaxRows picks the first maximum', () => {
  assert.deepEqual(argmaxRows([[0.1, 0.9], [0.5, 0.5], [0.2, 0.3, 0.5], Float32Array.from([3, 1, 3])]), [1, 0, 2, 0]);
});

test('binary AUC: hand cases without and with ties', () => {
  // Perfect separation, inverted, and the textbook example (sklearn docs: 0.75).
  assert.equal(binaryAuc([0.1, 0.2, 0.8, 0.9], [false, false, true, true]), 1);
  assert.equal(binaryAuc([0.9, 0.8, 0.2, 0.1], [false, false, true, true]), 0);
  assert.equal(binaryAuc([0.1, 0.4, 0.35, 0.8], [false, false, true, true]), 0.75);
  // All scores tied: every pair counts one half.
  assert.equal(binaryAuc([0.5, 0.5, 0.5, 0.5, 0.5], [true, false, true, false, false]), 0.5);
  // Positives {0.3, 0.7}, negatives {0.3, 0.1, 0.7}: pairs (0.3 vs 0.3) = 1/2, (0.3 vs 0.1) = 1,
  // (0.3 vs 0.7) = 0, (0.7 vs 0.3) = 1, (0.7 vs 0.1) = 1, (0.7 vs 0.7) = 1/2 -> 4 / 6.
  assert.equal(binaryAuc([0.3, 0.7, 0.3, 0.1, 0.7], [true, true, false, false, false]), 4 / 6);
  // No positives or no negatives: undefined.
  assert.ok(Number.isNaN(binaryAuc([0.1, 0.2], [true, true])));
  assert.ok(Number.isNaN(binaryAuc([0.1, 0.2], [false, false])));
  assert.throws(() => binaryAuc([0.1, NaN], [true, false]), isUserError(/score 1 is NaN/));
  // Infinite scores are ordered like any others.
  assert.equal(binaryAuc([-Infinity, Infinity, Infinity], [false, true, false]), 0.75);
});

test('binary AUC equals the brute-force pairwise count on random data with many ties', () => {
  const r = lcg(7);
  for (let trial = 0; trial < 40; trial++) {
    const n = 1 + Math.floor(r() * 120);
    const levels = trial % 2 === 0 ? 5 : 1e6; // few distinct values (heavy ties) or nearly none
    const scores = Array.from({ length: n }, () => Math.floor(r() * levels) / levels);
    const pos = Array.from({ length: n }, () => r() < 0.3 + 0.4 * (trial / 40));
    const got = binaryAuc(scores, pos);
    const want = pairwiseAuc(scores, pos);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(got), `trial ${trial}`);
    else assert.ok(Math.abs(got - want) < 1e-12, `trial ${trial}: ${got} vs ${want}`);
  }
});

test('auc with 2 classes is the binary AUC of the class-1 probability', () => {
  const scores = [[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]];
  const labels = [0, 0, 1, 1];
  assert.equal(auc(scores, labels), 0.75);
  // Only column 1 is used: changing column 0 changes nothing.
  assert.equal(auc(scores.map(([, b]) => [0, b!]), labels), 0.75);
});

test('multi-class auc is the macro one-vs-rest average; classes without positives are skipped', () => {
  const r = lcg(11);
  const n = 60;
  const c = 4;
  const scores = Array.from({ length: n }, () => {
    const row = Array.from({ length: c }, () => Math.round(r() * 10) / 10);
    const s = row.reduce((a, b) => a + b, 0) || 1;
    return row.map((v) => v / s);
  });
  const labels = Array.from({ length: n }, () => Math.floor(r() * c));
  const per = Array.from({ length: c }, (_, k) => pairwiseAuc(scores.map((row) => row[k]!), labels.map((l) => l === k)));
  const ovr = oneVsRestAuc(scores, labels);
  for (let k = 0; k < c; k++) assert.ok(Math.abs(ovr[k]! - per[k]!) < 1e-12, `class ${k}`);
  assert.ok(Math.abs(auc(scores, labels) - per.reduce((a, b) => a + b, 0) / c) < 1e-12);

  // Class 3 never occurs: it has no AUC, and the mean is over classes 0..2.
  const labels3 = labels.map((l) => l % 3);
  const ovr3 = oneVsRestAuc(scores, labels3);
  assert.equal(ovr3[3], null);
  const mean3 = [0, 1, 2].reduce((s, k) => s + pairwiseAuc(scores.map((row) => row[k]!), labels3.map((l) => l === k)), 0) / 3;
  assert.ok(Math.abs(auc(scores, labels3) - mean3) < 1e-12);

  // Hand case with 3 classes: each class perfectly ranked -> 1; one label only -> NaN.
  const eye = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  assert.equal(auc(eye, [0, 1, 2]), 1);
  assert.ok(Number.isNaN(auc(eye, [1, 1, 1])));
  assert.ok(Number.isNaN(auc([], [])));
});

test('auc refuses malformed input', () => {
  assert.throws(() => auc([[0.5, 0.5]], [0, 1]), isUserError(/2 labels for 1 predictions/));
  assert.throws(() => auc([[0.5, 0.5], [0.2, 0.8]], [0, 2]), isUserError(/label 1 is 2, out of range for 2 classes/));
  assert.throws(() => auc([[1], [1]], [0, 0]), isUserError(/at least 2 classes/));
  assert.throws(() => auc([[0.2, 0.3, 0.5], [0.5, 0.5]], [0, 1]), isUserError(/row 1 has 2 classes/));
  assert.throws(() => auc([[0.5, 0.5]], [-1]), isUserError(/not a class index/));
});

test('confusion matrix: rows are labels, columns predictions', () => {
  const pred = [0, 1, 1, 2, 2, 0];
  const labels = [0, 1, 2, 2, 1, 1];
  assert.deepEqual(confusionMatrix(pred, labels), [
    [1, 0, 0],
    [1, 1, 1],
    [0, 1, 1],
  ]);
  const m = confusionMatrix([1], [1], 4);
  assert.equal(m.length, 4);
  assert.equal(m[1]![1], 1);
  assert.equal(m.flat().reduce((a, b) => a + b, 0), 1);
  assert.throws(() => confusionMatrix([3], [0], 2), isUserError(/out of range for 2 classes/));
  // The trace over the total is the accuracy.
  const cm = confusionMatrix(pred, labels);
  assert.equal(cm.reduce((s, row, i) => s + row[i]!, 0) / pred.length, accuracy(pred, labels));
});
