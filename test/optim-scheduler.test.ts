// Learning-rate schedules against hand-computed values, their state round trip and errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor } from '../src/tensor/index.js';
import { SGD, CosineAnnealingLR, StepLR, LinearWarmup, type LRScheduler, type LrGroups } from '../src/optim/index.js';
import { assertClose } from './helpers/assert.js';

/** A stand-in optimizer: schedulers only touch paramGroups[i].lr. */
const groups = (...lrs: number[]): LrGroups => ({ paramGroups: lrs.map((lr) => ({ lr })) });
const TOL = { rtol: 1e-14, atol: 1e-16 };

function sequence(s: LRScheduler, epochs: number): number[][] {
  const out = [s.getLastLr()];
  for (let e = 0; e < epochs; e++) {
    s.step();
    assert.deepEqual(s.optimizer.paramGroups.map((g) => g.lr), s.getLastLr());
    out.push(s.getLastLr());
  }
  return out;
}

test('CosineAnnealingLR: (1 + cos(pi e / T)) / 2 between base and etaMin', () => {
  const c = Math.SQRT1_2; // cos(pi / 4)
  const got = sequence(new CosineAnnealingLR(groups(1, 0.5), { tMax: 4 }), 4);
  const want = [1, (1 + c) / 2, 0.5, (1 - c) / 2, 0];
  got.forEach((lrs, e) => assertClose(lrs, [want[e]!, want[e]! / 2], TOL, `epoch ${e}`));
  // with etaMin 0.1, base 1.1: the same shape shifted up by 0.1
  const shifted = sequence(new CosineAnnealingLR(groups(1.1), { tMax: 4, etaMin: 0.1 }), 4);
  shifted.forEach((lrs, e) => assertClose(lrs, [0.1 + want[e]!], TOL, `shifted epoch ${e}`));
});

test('StepLR: base * gamma^floor(e / stepSize)', () => {
  const got = sequence(new StepLR(groups(0.8), { stepSize: 2, gamma: 0.5 }), 6);
  assertClose(got.flat(), [0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.1], TOL);
  assertClose(new StepLR(groups(1), { stepSize: 3 }).lrAt(7), [0.01], TOL); // default gamma 0.1
});

test('LinearWarmup: linear from startFactor * base, then the wrapped schedule from its epoch 0', () => {
  const s = new LinearWarmup(new StepLR(groups(1), { stepSize: 2, gamma: 0.5 }), { epochs: 4, startFactor: 0.25 });
  assertClose(sequence(s, 8).flat(), [0.25, 0.4375, 0.625, 0.8125, 1, 1, 0.5, 0.5, 0.25], TOL);
  const none = new LinearWarmup(new CosineAnnealingLR(groups(2), { tMax: 2 }), { epochs: 0 });
  assertClose(sequence(none, 2).flat(), [2, 1, 0], TOL);
});

test('a real optimizer follows the schedule', () => {
  const p = tensor([0], [1], { dtype: 'float64' }).requiresGrad_(true);
  const opt = new SGD([p], { lr: 1 });
  const s = new StepLR(opt, { stepSize: 1, gamma: 0.5 });
  s.step();
  p.grad = tensor([1], [1], { dtype: 'float64' });
  opt.step(); // lr 0.5
  assert.deepEqual(p.toNumbers(), [-0.5]);
  p.dispose();
});

test('stateDict/loadStateDict resume the schedule', () => {
  const g = groups(1, 0.1);
  const a = new LinearWarmup(new CosineAnnealingLR(g, { tMax: 10, etaMin: 0.01 }), { epochs: 3 });
  for (let i = 0; i < 5; i++) a.step();
  const saved = JSON.parse(JSON.stringify(a.stateDict()));
  assert.deepEqual(saved, { kind: 'LinearWarmup', lastEpoch: 5, baseLrs: [1, 0.1] });
  // a fresh optimizer whose groups start elsewhere
  const g2 = groups(7, 7);
  const b = new LinearWarmup(new CosineAnnealingLR(g2, { tMax: 10, etaMin: 0.01 }), { epochs: 3 });
  b.loadStateDict(saved);
  assert.deepEqual(g2.paramGroups.map((x) => x.lr), a.getLastLr());
  a.step();
  b.step();
  assert.deepEqual(b.getLastLr(), a.getLastLr());
  assert.throws(() => new StepLR(groups(1, 1), { stepSize: 1 }).loadStateDict(saved), /state is of a LinearWarmup/);
  assert.throws(() => b.loadStateDict({ ...saved, baseLrs: [1] }), /one number per parameter group/);
  assert.throws(() => b.loadStateDict({ ...saved, lastEpoch: -1 }), /lastEpoch must be/);
});

test('schedulers refuse bad options', () => {
  assert.throws(() => new CosineAnnealingLR(groups(1), { tMax: 0 }), /tMax must be a number > 0/);
  assert.throws(() => new CosineAnnealingLR(groups(1), { tMax: 5, etaMin: -1 }), /etaMin/);
  assert.throws(() => new StepLR(groups(1), { stepSize: 1.5 }), /stepSize must be an integer/);
  assert.throws(() => new LinearWarmup(new StepLR(groups(1), { stepSize: 1 }), { epochs: 2, startFactor: 0 }), /startFactor/);
});
