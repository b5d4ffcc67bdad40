// clipGradNorm against hand-computed norms: gradients [3, 4] and [12] have a joint L2 norm of 13.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, UserError, type Tensor } from '../src/tensor/index.js';
import { clipGradNorm } from '../src/optim/index.js';
import { ttest } from './helpers/tidy-test.js';
import { assertClose } from './helpers/assert.js';

function params(dtype: 'float32' | 'float64' = 'float64'): Tensor[] {
  const a = tensor([1, 1], [2], { dtype }).requiresGrad_(true);
  const b = tensor([1], [1], { dtype }).requiresGrad_(true);
  a.grad = tensor([3, 4], [2], { dtype });
  b.grad = tensor([12], [1], { dtype });
  return [a, b];
}

ttest('clipGradNorm scales by maxNorm / (norm + 1e-6) and returns the norm before clipping', () => {
  const ps = params();
  assert.equal(clipGradNorm(ps, 6.5), 13);
  const k = 6.5 / (13 + 1e-6);
  assertClose(ps[0]!.grad!, [3 * k, 4 * k], { rtol: 1e-14, atol: 0 });
  assertClose(ps[1]!.grad!, [12 * k], { rtol: 1e-14, atol: 0 });
  // the clipped norm is now (just under) 6.5
  assertClose([clipGradNorm(ps, 100)], [6.5], { rtol: 1e-6, atol: 0 });
});

ttest('clipGradNorm leaves gradients under maxNorm unchanged', () => {
  const ps = params('float32');
  assert.equal(clipGradNorm(ps, 13.5), 13);
  assert.deepEqual(ps[0]!.grad!.toNumbers(), [3, 4]);
  assert.deepEqual(ps[1]!.grad!.toNumbers(), [12]);
});

ttest('clipGradNorm with normType Infinity uses the largest |g|', () => {
  const ps = params();
  ps[0]!.grad = tensor([3, -20], [2], { dtype: 'float64' });
  assert.equal(clipGradNorm(ps, 10, { normType: Infinity }), 20);
  assertClose(ps[0]!.grad!, [3 * (10 / (20 + 1e-6)), -20 * (10 / (20 + 1e-6))], { rtol: 1e-14, atol: 0 });
});

ttest('clipGradNorm ignores parameters without gradients; none at all gives 0', () => {
  const ps = params();
  const c = tensor([5], [1]).requiresGrad_(true);
  assert.equal(clipGradNorm([...ps, c], 1e9), 13);
  assert.equal(clipGradNorm([c], 1), 0);
});

ttest('clipGradNorm: non-finite norms (error on request) and bad arguments', () => {
  const ps = params();
  ps[1]!.grad = tensor([Infinity], [1], { dtype: 'float64' });
  assert.throws(() => clipGradNorm(ps, 1, { errorIfNonfinite: true }), (e: Error) => e instanceof UserError && /not finite/.test(e.message));
  assert.equal(clipGradNorm(ps, 1), Infinity);
  assert.throws(() => clipGradNorm(ps, 1, { normType: 1 }), /normType must be 2 or Infinity/);
  assert.throws(() => clipGradNorm(ps, -1), /maxNorm/);
});
