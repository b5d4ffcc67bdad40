// GradScaler against PyTorch's formula: loss * S; gradients / S before the step; a step with an
// inf/NaN gradient is skipped and S halves; S doubles after growthInterval clean steps.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type Tensor, tensor, tidy, noGrad, memory, UserError } from '../src/tensor/index.js';
import { SGD, GradScaler } from '../src/optim/index.js';

const values = (t: Tensor): number[] => t.toNumbers();

/** One parameter p = [1, 2] trained on loss = c . p (gradient c), through the scaler. */
function setup(c: number[], o: ConstructorParameters<typeof GradScaler>[0] = {}) {
  const p = tensor([1, 2], [2]).requiresGrad_();
  const opt = new SGD([p], { lr: 0.5 });
  const scaler = new GradScaler(o);
  const backward = (coef = c) => tidy(() => scaler.scale(p.mul(tensor(coef, [2])).sum()).backward());
  return { p, opt, scaler, backward, dispose: () => (opt.dispose(), p.dispose()) };
}

describe('GradScaler', () => {
  test("PyTorch's defaults; scale(loss) multiplies by the scale", () => {
    const s = new GradScaler();
    assert.equal(s.getScale(), 65536);
    assert.deepEqual(s.stateDict(), { scale: 65536, growth_factor: 2, backoff_factor: 0.5, growth_interval: 2000, _growth_tracker: 0 });
    const l = tensor([3], []);
    const y = s.scale(l);
    assert.equal(y.item(), 3 * 65536);
    [l, y].forEach((t) => t.dispose());
  });

  test('step() unscales the gradients, then steps: the update is the unscaled one', () => {
    const { p, opt, scaler, backward, dispose } = setup([0.25, -1], { initScale: 1024 });
    backward();
    const g = p.grad!;
    assert.deepEqual(values(g), [0.25 * 1024, -1024]); // scaled by backward
    g.dispose();
    assert.equal(scaler.step(opt), true);
    const g2 = p.grad!;
    assert.deepEqual(values(g2), [0.25, -1]); // unscaled in place
    g2.dispose();
    assert.deepEqual(values(p), [1 - 0.5 * 0.25, 2 + 0.5]);
    scaler.update();
    assert.equal(scaler.getScale(), 1024); // one clean step < growthInterval: unchanged
    dispose();
  });

  for (const bad of [Infinity, NaN]) {
    test(`a ${bad} gradient skips the step and halves the scale`, () => {
      const { p, opt, scaler, backward, dispose } = setup([1, 1], { initScale: 256 });
      backward([1, bad]);
      assert.equal(scaler.step(opt), false);
      assert.deepEqual(values(p), [1, 2]);
      scaler.update();
      assert.equal(scaler.getScale(), 128);
      assert.equal(scaler.stateDict()._growth_tracker, 0);
      dispose();
    });
  }

  test('the scale grows by growthFactor after growthInterval clean steps, and the count restarts after a skip', () => {
    const { p, opt, scaler, backward, dispose } = setup([1, 1], { initScale: 8, growthInterval: 3, growthFactor: 4, backoffFactor: 0.25 });
    const step = (coef?: number[]) => {
      opt.zeroGrad();
      backward(coef);
      scaler.step(opt);
      scaler.update();
    };
    step();
    step();
    assert.equal(scaler.getScale(), 8);
    step([Infinity, 0]); // tracker back to 0, scale * 0.25
    assert.equal(scaler.getScale(), 2);
    step();
    step();
    assert.equal(scaler.getScale(), 2);
    step(); // third clean step in a row
    assert.equal(scaler.getScale(), 8);
    assert.equal(scaler.stateDict()._growth_tracker, 0);
    dispose();
  });

  test('unscale_ before step (for clipping) is not repeated by step; misuse is one UserError', () => {
    const { p, opt, scaler, backward, dispose } = setup([2, 2], { initScale: 4 });
    backward();
    scaler.unscale_(opt);
    assert.throws(() => scaler.unscale_(opt), UserError);
    scaler.step(opt);
    assert.deepEqual(values(p), [0, 1]); // gradient 2, lr 0.5: unscaled once, not twice
    assert.throws(() => scaler.step(opt), UserError);
    scaler.update();
    assert.throws(() => scaler.update(), UserError);
    dispose();
  });

  test('disabled (bf16, fp32): everything passes through', () => {
    const { p, opt, scaler, backward, dispose } = setup([1, 0], { enabled: false, initScale: 1024 });
    assert.equal(scaler.getScale(), 1);
    backward();
    assert.equal(scaler.step(opt), true);
    scaler.update();
    assert.deepEqual(values(p), [0.5, 2]);
    dispose();
  });

  test('stateDict / loadStateDict round trip (checkpoints), bad state refused', () => {
    const a = setup([1, 1], { initScale: 64, growthInterval: 5 });
    a.backward();
    a.scaler.step(a.opt);
    a.scaler.update();
    const saved = JSON.parse(JSON.stringify(a.scaler.stateDict()));
    const b = new GradScaler();
    b.loadStateDict(saved);
    assert.deepEqual(b.stateDict(), { scale: 64, growth_factor: 2, backoff_factor: 0.5, growth_interval: 5, _growth_tracker: 1 });
    assert.throws(() => b.loadStateDict({ ...saved, scale: -1 }), UserError);
    assert.throws(() => new GradScaler({ backoffFactor: 2 }), UserError);
    a.dispose();
  });

  test('no tensors leak over scaled steps', () => {
    const { opt, scaler, backward, dispose } = setup([1, 1]);
    const run = () => {
      noGrad(() => opt.zeroGrad());
      backward();
      scaler.step(opt);
      scaler.update();
    };
    run();
    const before = memory().liveTensors;
    for (let i = 0; i < 5; i++) run();
    assert.equal(memory().liveTensors, before);
    dispose();
  });
});
