// SGD on a 2-element parameter, two steps, against values worked out by hand.
// p0 = [1, -2], g1 = [0.5, 1], g2 = [-1, 2], lr = 0.1 throughout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, UserError } from '../src/tensor/index.js';
import { SGD, type SGDOptions } from '../src/optim/index.js';
import { ttest } from './helpers/tidy-test.js';
import { assertClose } from './helpers/assert.js';

const TOL = { rtol: 1e-12, atol: 1e-14 };
const G = [
  [0.5, 1],
  [-1, 2],
];

/** Runs two steps and returns the parameter after each. */
function twoSteps(options: Partial<SGDOptions>): number[][] {
  const p = tensor([1, -2], [2], { dtype: 'float64' }).requiresGrad_(true);
  const opt = new SGD([p], { lr: 0.1, ...options });
  const out = G.map((g) => {
    p.grad = tensor(g, [2], { dtype: 'float64' });
    opt.step();
    return p.toNumbers();
  });
  opt.dispose();
  return out;
}

const cases: [string, Partial<SGDOptions>, number[][]][] = [
  // p -= 0.1 g
  ['plain', {}, [[0.95, -2.1], [1.05, -2.3]]],
  // buf1 = g1; buf2 = 0.9 [0.5, 1] + [-1, 2] = [-0.55, 2.9]
  ['momentum', { momentum: 0.9 }, [[0.95, -2.1], [1.005, -2.39]]],
  // no dampening on the first step; buf2 = 0.9 [0.5, 1] + 0.5 [-1, 2] = [-0.05, 1.9]
  ['momentum + dampening', { momentum: 0.9, dampening: 0.5 }, [[0.95, -2.1], [0.955, -2.29]]],
  // d1 = g1 + 0.9 g1 = [0.95, 1.9]; d2 = [-1, 2] + 0.9 [-0.55, 2.9] = [-1.495, 4.61]
  ['nesterov', { momentum: 0.9, nesterov: true }, [[0.905, -2.19], [1.0545, -2.651]]],
  // d1 = g1 + 0.1 [1, -2] = [0.6, 0.8]; d2 = [-1, 2] + 0.1 [0.94, -2.08] = [-0.906, 1.792]
  ['weight decay', { weightDecay: 0.1 }, [[0.94, -2.08], [1.0306, -2.2592]]],
  // buf2 = 0.9 [0.6, 0.8] + [-0.906, 1.792] = [-0.366, 2.512]
  ['weight decay + momentum', { weightDecay: 0.1, momentum: 0.9 }, [[0.94, -2.08], [0.9766, -2.3312]]],
  // d1 = [0.6, 0.8] * 1.5 = [0.9, 1.2]; buf2 = 0.5 [0.6, 0.8] + d2' with d2' = [-1, 2] + 0.1 [0.91, -2.12] = [-0.909, 1.788]
  //   buf2 = [-0.609, 2.188]; d = d2' + 0.5 buf2 = [-1.2135, 2.882]
  ['weight decay + nesterov', { weightDecay: 0.1, momentum: 0.5, nesterov: true }, [[0.91, -2.12], [1.03135, -2.4082]]],
];

for (const [name, options, want] of cases) {
  ttest(`SGD ${name}`, () => {
    const got = twoSteps(options);
    want.forEach((w, t) => assertClose(got[t]!, w, TOL, `${name}, step ${t + 1}`));
  });
}

ttest('SGD leaves .grad untouched (weight decay is applied to a copy)', () => {
  const p = tensor([1, -2], [2], { dtype: 'float64' }).requiresGrad_(true);
  const opt = new SGD([p], { lr: 0.1, weightDecay: 0.5, momentum: 0.9, nesterov: true });
  p.grad = tensor([0.5, 1], [2], { dtype: 'float64' });
  opt.step();
  opt.step();
  assert.deepEqual(p.grad!.toNumbers(), [0.5, 1]);
  opt.dispose();
});

ttest('SGD skips parameters without a gradient and keeps no state for them', () => {
  const a = tensor([1, 2], [2], { dtype: 'float64' }).requiresGrad_(true);
  const b = tensor([3, 4], [2], { dtype: 'float64' }).requiresGrad_(true);
  const opt = new SGD([a, b], { lr: 1, momentum: 0.5 });
  b.grad = tensor([1, 1], [2], { dtype: 'float64' });
  opt.step();
  assert.deepEqual(a.toNumbers(), [1, 2]);
  assert.deepEqual(b.toNumbers(), [2, 3]);
  assert.deepEqual([...opt.stateDict().tensors.keys()], ['state.1.momentum_buffer']);
  opt.dispose();
});

ttest('SGD follows a changed group lr', () => {
  const p = tensor([1, 1], [2], { dtype: 'float64' }).requiresGrad_(true);
  const opt = new SGD([p], { lr: 0.1 });
  p.grad = tensor([1, 2], [2], { dtype: 'float64' });
  opt.paramGroups[0]!.lr = 0.5;
  opt.step();
  assertClose(p, [0.5, 0], TOL);
});

test('SGD refuses bad options', () => {
  const p = tensor([1, 2]).requiresGrad_(true);
  const bad: [Partial<SGDOptions> & { lr: number }, RegExp][] = [
    [{ lr: -1 }, /lr must be/],
    [{ lr: 0.1, momentum: -0.5 }, /momentum must be/],
    [{ lr: 0.1, nesterov: true }, /Nesterov/],
    [{ lr: 0.1, nesterov: true, momentum: 0.9, dampening: 0.1 }, /Nesterov/],
    [{ lr: NaN }, /lr must be/],
  ];
  for (const [o, re] of bad) assert.throws(() => new SGD([p], o), (e: Error) => e instanceof UserError && re.test(e.message));
  assert.throws(() => new SGD([p], { lr: 0.1, weight_decay: 1 } as never), /unknown option "weight_decay"/);
  assert.throws(() => new SGD([], { lr: 0.1 }), /empty parameter list/);
  assert.throws(() => new SGD([p, p], { lr: 0.1 }), /more than one group/);
  assert.throws(() => new SGD([{ params: [p] }, { params: [p] }], { lr: 0.1 }), /more than one group/);
  const nonLeaf = p.mul(2);
  assert.throws(() => new SGD([nonLeaf], { lr: 0.1 }), /non-leaf/);
  nonLeaf.dispose();
  p.dispose();
});

ttest('SGD param groups: per-group options override the defaults', () => {
  const a = tensor([1], [1], { dtype: 'float64' }).requiresGrad_(true);
  const b = tensor([1], [1], { dtype: 'float64' }).requiresGrad_(true);
  const opt = new SGD([{ params: [a] }, { params: [b], lr: 0.5, weightDecay: 1 }], { lr: 0.1 });
  assert.equal(opt.paramGroups[0]!.lr, 0.1);
  assert.equal(opt.paramGroups[1]!.weightDecay, 1);
  a.grad = tensor([1], [1], { dtype: 'float64' });
  b.grad = tensor([1], [1], { dtype: 'float64' });
  opt.step();
  assertClose(a, [0.9], TOL); // 1 - 0.1 * 1
  assertClose(b, [0], TOL); // 1 - 0.5 * (1 + 1 * 1)
  const p: Tensor = tensor([0]).requiresGrad_(true);
  opt.addParamGroup({ params: [p], momentum: 0.9 });
  assert.equal(opt.paramGroups[2]!.momentum, 0.9);
  assert.equal(opt.paramGroups[2]!.lr, 0.1);
});
