// Classification metrics over plain arrays: accuracy, AUC (the paper's and MedMNIST's two
// metrics) and the confusion matrix. No tensors: callers read predictions back first.
import { UserError } from '../tensor/errors.js';

type Labels = ArrayLike<number>;

function checkLabels(labels: Labels, n: number, what: string): void {
  if (labels.length !== n) throw new UserError(`${what}: ${labels.length} labels for ${n} predictions`);
  for (let i = 0; i < n; i++) {
    const l = labels[i]!;
    if (!(Number.isInteger(l) && l >= 0)) throw new UserError(`${what}: label ${i} is ${l}, not a class index`);
  }
}

/**
 * Fraction of predictions equal to their label, in [0, 1]; NaN when there are no samples.
 * `pred` and `labels` hold class indices.
 */
export function accuracy(pred: Labels, labels: Labels): number {
  if (pred.length !== labels.length) throw new UserError(`accuracy: ${pred.length} predictions for ${labels.length} labels`);
  if (pred.length === 0) return NaN;
  let hit = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === labels[i]) hit++;
  return hit / pred.length;
}

/** Index of the largest value of each row (the first one on ties), e.g. predictions from probabilities. */
export function argmaxRows(scores: readonly ArrayLike<number>[]): number[] {
  return scores.map((row) => {
    let best = 0;
    for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
    return best;
  });
}

/**
 * Binary ROC AUC of `scores` for the samples where `positive` is true, by the rank statistic
 * (Mann-Whitney U): AUC = (R+ - n+(n+ + 1)/2) / (n+ n-), where R+ is the sum of the ranks of the
 * positive samples and tied scores get the mean of their ranks. That equals the probability that
 * a random positive scores above a random negative, counting ties as one half, which is
 * sklearn's roc_auc_score. NaN when there are no positives or no negatives. O(n log n).
 */
export function binaryAuc(scores: ArrayLike<number>, positive: ArrayLike<boolean>): number {
  const n = scores.length;
  if (positive.length !== n) throw new UserError(`binaryAuc: ${positive.length} labels for ${n} scores`);
  let nPos = 0;
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(scores[i]!)) throw new UserError(`AUC: score ${i} is NaN`);
    if (positive[i]) nPos++;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]! || 0);
  let rankSumPos = 0;
  // Walk groups of equal scores; ranks are 1-based, a group at positions [i, j) has mean rank (i + j + 1) / 2.
  for (let i = 0; i < n; ) {
    let j = i + 1;
    while (j < n && scores[order[j]!] === scores[order[i]!]) j++;
    const meanRank = (i + j + 1) / 2;
    for (let k = i; k < j; k++) if (positive[order[k]!]) rankSumPos += meanRank;
    i = j;
  }
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/**
 * One-vs-rest AUC of each class c: binaryAuc(scores[:, c], labels == c). A class with no
 * positive or no negative sample in `labels` has no AUC and gets null.
 */
export function oneVsRestAuc(scores: readonly ArrayLike<number>[], labels: Labels): (number | null)[] {
  const n = scores.length;
  checkLabels(labels, n, 'AUC');
  const c = n > 0 ? scores[0]!.length : 0;
  for (let i = 0; i < n; i++) {
    if (scores[i]!.length !== c) throw new UserError(`AUC: score row ${i} has ${scores[i]!.length} classes, row 0 has ${c}`);
    if (labels[i]! >= c) throw new UserError(`AUC: label ${i} is ${labels[i]}, out of range for ${c} classes`);
  }
  const out: (number | null)[] = [];
  for (let k = 0; k < c; k++) {
    const col = Float64Array.from({ length: n }, (_, i) => scores[i]![k]!);
    const pos = Array.from({ length: n }, (_, i) => labels[i] === k);
    const a = binaryAuc(col, pos);
    out.push(Number.isNaN(a) ? null : a);
  }
  return out;
}

/**
 * ROC AUC from an N x C matrix of class probabilities (or any scores) and integer labels, as
 * MedMNIST's evaluator computes it:
 * - C = 2: the binary AUC of the class-1 score;
 * - C > 2: the macro average of the one-vs-rest AUCs of the classes. Unlike sklearn (which
 *   fails), classes with no positive or no negative sample are skipped, since their AUC is
 *   undefined; the average is over the remaining classes.
 * NaN when no class has an AUC (e.g. every label is the same, or there are no samples).
 */
export function auc(scores: readonly ArrayLike<number>[], labels: Labels): number {
  const n = scores.length;
  checkLabels(labels, n, 'AUC');
  if (n === 0) return NaN;
  const c = scores[0]!.length;
  if (c < 2) throw new UserError(`AUC needs scores for at least 2 classes, got ${c}`);
  if (c === 2) {
    for (let i = 0; i < n; i++) {
      if (scores[i]!.length !== 2) throw new UserError(`AUC: score row ${i} has ${scores[i]!.length} classes, row 0 has 2`);
      if (labels[i]! >= 2) throw new UserError(`AUC: label ${i} is ${labels[i]}, out of range for 2 classes`);
    }
    return binaryAuc(Float64Array.from(scores, (r) => r[1]!), Array.from(labels, (l) => l === 1));
  }
  const per = oneVsRestAuc(scores, labels).filter((a): a is number => a !== null);
  return per.length === 0 ? NaN : per.reduce((s, a) => s + a, 0) / per.length;
}

/**
 * Confusion matrix M with M[true][predicted] = number of samples (sklearn's orientation: rows
 * are labels, columns predictions). `numClasses` defaults to 1 + the largest index seen.
 */
export function confusionMatrix(pred: Labels, labels: Labels, numClasses?: number): number[][] {
  const n = pred.length;
  checkLabels(labels, n, 'confusionMatrix');
  checkLabels(pred, n, 'confusionMatrix (predictions)');
  let k = numClasses ?? 0;
  if (numClasses === undefined) for (let i = 0; i < n; i++) k = Math.max(k, pred[i]! + 1, labels[i]! + 1);
  else if (!(Number.isInteger(numClasses) && numClasses >= 1)) throw new UserError(`confusionMatrix: numClasses must be a positive integer, got ${numClasses}`);
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < n; i++) {
    const t = labels[i]!;
    const p = pred[i]!;
    if (t >= k || p >= k) throw new UserError(`confusionMatrix: sample ${i} (label ${t}, prediction ${p}) is out of range for ${k} classes`);
    m[t]![p]!++;
  }
  return m;
}
