// AdamW on a 2-element parameter, two steps, against values worked out by hand.
// p0 = [1, -2], lr = 0.1, eps = 0 unless stated. With betas (b1, b2), after step t:
//   m_t = b1 m + (1 - b1) g,  v_t = b2 v + (1 - b2) g^2,
//   p -= lr / (1 - b1^t) * m_t / (sqrt(v_t) / sqrt(1 - b2^t) + eps), after p *= 1 - lr * wd.
// The first Adam step moves each element by exactly lr against the sign of its gradient.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, UserError } from '../src/tensor/index.js';
import { AdamW, type AdamWOptions } from '../src/optim/index.js';
import { ttest } from './helpers/tidy-test.js';
import { assertClose } from './helpers/assert.js';

const TOL = { rtol: 1e-12, atol: 1e-14 };

function twoSteps(options: Partial<AdamWOptions>, grads: number[][]): number[][] {
  const p = tensor([1, -2], [2], { dtype: 'float64' }).requiresGrad_(true);
  const opt = new AdamW([p], { lr: 0.1, eps: 0, weightDecay: 0, ...options });
  const out = grads.map((g) => {
    p.grad = tensor(g, [2], { dtype: 'float64' });
    opt.step();
    return p.toNumbers();
  });
  opt.dispose();
  return out;
}

// betas (0.5, 0.75), g1 = [0.5, 1], g2 = [-1, 2]:
//   m2 = 0.5 [0.25, 0.5] + 0.5 [-1, 2] = [-0.375, 1.25]
//   v2 = 0.75 [0.0625, 0.25] + 0.25 [1, 4] = [0.296875, 1.1875]; v2 / (1 - 0.75^2) = [19/28, 19/7]
//   step 2 moves p by -(0.1 / 0.75) m2 / sqrt([19/28, 19/7])
const G = [
  [0.5, 1],
  [-1, 2],
];
const s2 = [(-(0.1 / 0.75) * -0.375) / Math.sqrt(19 / 28), (-(0.1 / 0.75) * 1.25) / Math.sqrt(19 / 7)];

ttest('AdamW, no weight decay', () => {
  const got = twoSteps({ betas: [0.5, 0.75] }, G);
  assertClose(got[0]!, [0.9, -2.1], TOL, 'step 1');
  assertClose(got[1]!, [0.9 + s2[0]!, -2.1 + s2[1]!], TOL, 'step 2');
});

ttest('AdamW, decoupled weight decay (p scaled by 1 - lr wd before the update)', () => {
  const got = twoSteps({ betas: [0.5, 0.75], weightDecay: 0.5 }, G);
  // step 1: [1, -2] * 0.95 = [0.95, -1.9], then -+0.1; step 2: * 0.95, then the same Adam move
  assertClose(got[0]!, [0.85, -2.0], TOL, 'step 1');
  assertClose(got[1]!, [0.85 * 0.95 + s2[0]!, -2.0 * 0.95 + s2[1]!], TOL, 'step 2');
});

ttest('AdamW, eps is added after the bias correction of sqrt(v)', () => {
  // step 1: m/(1 - b1) = g and sqrt(v/(1 - b2)) = |g|, so the move is lr g / (|g| + eps)
  const got = twoSteps({ betas: [0.5, 0.75], eps: 0.5 }, G.slice(0, 1));
  assertClose(got[0]!, [1 - (0.1 * 0.5) / 1, -2 - (0.1 * 1) / 1.5], TOL);
});

ttest('AdamW amsgrad divides by the running maximum of v', () => {
  // betas (0.5, 0.5), g1 = [2, 1], g2 = [0, 1]: v1 = [2, 0.5], v2 = [1, 0.75], vmax = [2, 0.75];
  // m2 = [0.5, 0.75]; bias corrections 0.75 and 0.75.
  const g = [
    [2, 1],
    [0, 1],
  ];
  const plain = twoSteps({ betas: [0.5, 0.5] }, g);
  const ams = twoSteps({ betas: [0.5, 0.5], amsgrad: true }, g);
  const k = 0.1 / 0.75;
  assertClose(plain[0]!, [0.9, -2.1], TOL, 'plain step 1');
  assertClose(ams[0]!, [0.9, -2.1], TOL, 'amsgrad step 1');
  assertClose(plain[1]!, [0.9 - (k * 0.5) / Math.sqrt(1 / 0.75), -2.2], TOL, 'plain step 2');
  assertClose(ams[1]!, [0.9 - (k * 0.5) / Math.sqrt(2 / 0.75), -2.2], TOL, 'amsgrad step 2');
});

ttest('AdamW default hyper-parameters are torch defaults', () => {
  const p = tensor([1, -2], [2], { dtype: 'float64' }).requiresGrad_(true);
  const opt = new AdamW([p]);
  assert.deepEqual({ ...opt.defaults }, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false });
  p.grad = tensor([0.5, -1], [2], { dtype: 'float64' });
  opt.step();
  // step 1: p (1 - 1e-5) - 1e-3 g / (|g| + 1e-8)
  assertClose(p, [1 * (1 - 1e-5) - (1e-3 * 0.5) / (0.5 + 1e-8), -2 * (1 - 1e-5) + (1e-3 * 1) / (1 + 1e-8)], TOL);
  const sd = opt.stateDict();
  assert.deepEqual([...sd.tensors.keys()].sort(), ['state.0.exp_avg', 'state.0.exp_avg_sq', 'state.0.step']);
  assert.equal(sd.tensors.get('state.0.step')!.item(), 1);
  assertClose(sd.tensors.get('state.0.exp_avg')!, [0.05, -0.1], TOL);
  assertClose(sd.tensors.get('state.0.exp_avg_sq')!, [0.001 * 0.25, 0.001], TOL);
  opt.dispose();
});

test('AdamW refuses bad options', () => {
  const p = tensor([1, 2]).requiresGrad_(true);
  const bad: [Partial<AdamWOptions>, RegExp][] = [
    [{ lr: -1 }, /lr must be/],
    [{ betas: [1, 0.9] }, /betas/],
    [{ betas: [0.9, -0.1] }, /betas/],
    [{ eps: -1e-8 }, /eps must be/],
    [{ weightDecay: Infinity }, /weightDecay must be/],
  ];
  for (const [o, re] of bad) assert.throws(() => new AdamW([p], o), (e: Error) => e instanceof UserError && re.test(e.message));
  assert.throws(() => new AdamW([p], { beta1: 0.9 } as never), /unknown option "beta1"/);
  p.dispose();
});
