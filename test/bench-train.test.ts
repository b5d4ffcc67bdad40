// lorkd bench train --rounds N: lorkd and PyTorch timed in alternating rounds, the figures the
// medians of the rounds (every round in lorkd_runs / pytorch_runs); --rounds 0 is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchTrain } from '../bench/train.js';
import { median } from '../bench/rounds.js';
import { hasTorch } from '../bench/pytorch.js';

test('rounds: one figure per round and engine, the row gives their medians', () => {
  const r = benchTrain({ model: 'shufflenet_v2_x0_5', input: 32, batch: 4, steps: 1, warmup: 0, threads: 1, rounds: 3 });
  assert.equal(r.rounds, 3);
  assert.equal(r.lorkd_runs.length, 3);
  assert.ok(r.lorkd_runs.every((v) => v > 0 && Number.isFinite(v)));
  assert.equal(r.lorkd_img_per_s, median(r.lorkd_runs));
  if (hasTorch()) {
    assert.equal(r.pytorch_runs.length, 3);
    assert.equal(r.pytorch_img_per_s, median(r.pytorch_runs));
    assert.ok(Math.abs(r.ratio! - r.lorkd_img_per_s / r.pytorch_img_per_s!) < 1e-12);
  } else {
    assert.deepEqual(r.pytorch_runs, []);
    assert.equal(r.ratio, null);
  }
});

test('rounds must be a whole number >= 1', () => {
  assert.throws(() => benchTrain({ model: 'shufflenet_v2_x0_5', input: 32, batch: 2, steps: 1, rounds: 0, noTorch: true }), /rounds must be a whole number >= 1, got 0/);
});
