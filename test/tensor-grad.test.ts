// Autograd: every differentiable op against central finite differences in float64, and the
// autograd API (explicit gradients, retainGraph, grad reset, noGrad, detach).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Tensor, tensor, zeros, ones, cat, stack, where, matmul, mm, bmm, addmm, einsum, conv2d, batchNorm, maxPool2d, avgPool2d,
  adaptiveAvgPool2d, interpolate, softmax, logSoftmax, crossEntropy, nllLoss, klDiv, mseLoss, linear, relu, gelu, pad,
  noGrad, isGradEnabled, tidy, TorchError,
} from '../src/tensor/index.js';
import { gradcheck, type GradcheckOptions } from './helpers/gradcheck.js';
import { randArray, distinctArray } from './helpers/random.js';
import { assertClose } from './helpers/assert.js';
import { ttest } from './helpers/tidy-test.js';

let seed = 100;
/** A float64 tensor of uniform values in [lo, hi). */
const R = (shape: number[], lo = -1, hi = 1): Tensor =>
  tensor(randArray(shape.reduce((a, b) => a * b, 1), seed++, lo, hi), shape, { dtype: 'float64' });
/** A float64 tensor of well-separated distinct values (no ties for max/sort). */
const D = (shape: number[]): Tensor => tensor(distinctArray(shape.reduce((a, b) => a * b, 1), seed++, -2, 2), shape, { dtype: 'float64' });
const i64 = (data: number[], shape?: number[]) => tensor(data, shape, { dtype: 'int64' });

/** A test that gradchecks fn at the given inputs. */
function check(name: string, fn: (...xs: Tensor[]) => Tensor, inputs: () => Tensor[], o?: GradcheckOptions): void {
  ttest(name, () => {
    const r = gradcheck(fn, inputs(), o);
    assert.ok(r.checked > 0);
  });
}

describe('gradcheck helper', () => {
  ttest('catches a wrong gradient', () => {
    // x * stopgrad(x) has gradient x, not 2x: a checker that compared nothing would pass it
    assert.throws(() => gradcheck((x) => x.mul(x.detach()), [R([3])]), /gradcheck: input 0/);
  });
});

describe('elementwise', () => {
  check('add and sub with alpha and broadcasting', (a, b) => a.add(b, 2).sub(b.mul(a), -0.5), () => [R([2, 3]), R([3])]);
  check('mul and div (both arguments)', (a, b) => a.mul(b).div(b.add(3)), () => [R([2, 3]), R([2, 3])]);
  check('div by a tensor and a scalar', (a, b) => a.div(b).div(4), () => [R([4]), R([4], 0.5, 2)]);
  check('pow with scalar and tensor exponents', (a, b) => a.pow(3).add(a.pow(b)), () => [R([5], 0.5, 2), R([5])]);
  check('exp, log, sqrt, rsqrt', (a) => a.exp().add(a.log()).add(a.sqrt()).add(a.rsqrt()), () => [R([5], 0.5, 2)]);
  check('neg, abs, tanh, sigmoid', (a) => a.neg().add(a.abs()).add(a.tanh()).add(a.sigmoid()), () => [D([6])]);
  check('relu and gelu', (a) => relu(a).add(gelu(a)).add(a.relu()), () => [D([6])]);
  check('clamp (away from the bounds)', (a) => a.clamp(-0.5, 0.5), () => [tensor([-0.9, -0.2, 0.1, 0.45, 0.8], [5], { dtype: 'float64' })]);
  check('maximum and minimum', (a, b) => a.maximum(b).add(a.minimum(b).mul(2)), () => [D([5]), D([5])]);
  check('where', (a, b) => where(a.gt(0), a.mul(2), b), () => [D([6]), R([6])]);
});

describe('reductions', () => {
  check('sum and mean over dims with keepdim', (a) => a.sum(1, true).mul(a.mean([0, 1])).add(a.sum()), () => [R([2, 3, 4])]);
  check('var, with and without correction', (a) => a.var(1).add(a.var(null, 0)).add(a.var(0, 1, true).sum()), () => [R([3, 4])]);
  check('logsumexp', (a) => a.logsumexp(1).add(a.logsumexp([0, 1], true).sum()), () => [R([3, 4], -3, 3)]);
  check('amax, amin (distinct values)', (a) => a.amax(1).add(a.amin(0).sum()), () => [D([3, 4])]);
  check('max values along a dim', (a) => a.max(1).values.mul(2), () => [D([3, 4])]);
  check('cumsum', (a) => a.cumsum(1).mul(a), () => [R([2, 4])]);
});

describe('shape ops', () => {
  check('reshape, permute, transpose, flatten', (a) => a.reshape([4, 6]).t().reshape([2, 3, 4]).permute([2, 0, 1]).flatten(1).transpose(0, 1), () => [R([2, 3, 4])]);
  check('squeeze, unsqueeze, expand, repeat', (a) => a.unsqueeze(0).expand([3, 2, 4]).add(a.repeat([3, 1]).reshape([3, 2, 4])).squeeze(), () => [R([2, 4])]);
  check('cat and stack', (a, b) => cat([a, b.mul(2), a], 1).add(stack([b, a], 1).reshape([2, 4]).narrow(1, 0, 3).pow(2).sum(1, true)), () => [R([2, 2]), R([2, 2])]);
  check('narrow, select, split, chunk', (a) => {
    const [p, q] = a.split([1, 3], 1);
    const c = a.chunk(2, 0);
    return a.narrow(1, 1, 2).sum(1).add(a.select(1, 3)).add(p!.squeeze(1)).add(q!.sum(1)).add(c[1]!.sum());
  }, () => [R([4, 4])]);
  check('indexSelect with repeated indices', (a) => a.indexSelect(0, i64([2, 0, 2, 1])).mul(a.indexSelect(1, i64([1, 1, 0]).sort().values).sum()), () => [R([3, 2])]);
  check('indexAdd (self and source)', (a, s) => a.indexAdd(0, i64([0, 2, 0]), s, 1.5).pow(2), () => [R([3, 2]), R([3, 2])]);
  check('gather', (a) => a.gather(1, i64([0, 0, 2, 1, 2, 2], [2, 3])).pow(2), () => [R([2, 3])]);
  check('scatter (self and source)', (a, s) => a.scatter(0, i64([0, 1, 2, 2, 0, 1], [2, 3]), s).mul(a), () => [R([3, 3]), R([2, 3])]);
  check('maskedFill and flip', (a) => a.maskedFill(tensor([1, 0, 0, 1, 0, 1], [2, 3], { dtype: 'bool' }), 0.5).flip([1]).mul(a), () => [R([2, 3])]);
  check('pad constant and reflect', (a) => pad(a, [1, 2, 0, 1], 'constant', 0.3).sum().add(pad(a, [1, 1, 1, 1], 'reflect').pow(2).sum()), () => [R([1, 1, 3, 3])]);
});

describe('matrix products', () => {
  check('matmul (matrix, vector, broadcast batch)', (a, b, v) => matmul(a, b).sum(0).add(matmul(a, v).sum()), () => [R([2, 3, 4]), R([4, 2]), R([4])]);
  check('mm and bmm', (a, b, c, d) => mm(a, b).sum().add(bmm(c, d)), () => [R([2, 3]), R([3, 2]), R([2, 2, 3]), R([2, 3, 2])]);
  check('addmm with beta and alpha', (bias, a, b) => addmm(bias, a, b, 0.5, 2), () => [R([4]), R([3, 2]), R([2, 4])]);
  check('einsum: product, batch, outer, trace', (a, b, c) =>
    einsum('ij,jk->ik', a, b).sum().add(einsum('bij,bjk->bik', c, c.transpose(1, 2))).add(einsum('i,j->ij', a.select(0, 0), b.select(1, 0)).sum()).add(einsum('ii->', a.narrow(1, 0, 2))),
  () => [R([2, 3]), R([3, 2]), R([2, 2, 3])]);
  check('linear with and without bias', (x, w, b) => linear(x, w, b).add(linear(x, w)), () => [R([3, 4]), R([2, 4]), R([2])]);
});

describe('convolution, normalisation, pooling, resizing', () => {
  check('conv2d with groups, stride, padding, dilation and bias', (x, w, b) => conv2d(x, w, b, { stride: [2, 1], padding: [1, 2], dilation: [1, 2], groups: 2 }), () => [R([1, 4, 5, 5]), R([4, 2, 3, 2]), R([4])]);
  check('conv2d depthwise, stride 2', (x, w) => conv2d(x, w, null, { stride: 2, padding: 1, groups: 3 }), () => [R([1, 3, 4, 4]), R([3, 1, 3, 3])]);
  check('batchNorm training (input, weight, bias)', (x, w, b) => batchNorm(x, { weight: w, bias: b, training: true, runningMean: zeros([2], { dtype: 'float64' }), runningVar: ones([2], { dtype: 'float64' }) }), () => [R([3, 2, 2, 2]), R([2], 0.5, 1.5), R([2])]);
  check('batchNorm eval', (x, w, b) => batchNorm(x, { weight: w, bias: b, training: false, runningMean: tensor([0.2, -0.1], [2], { dtype: 'float64' }), runningVar: tensor([1.5, 0.7], [2], { dtype: 'float64' }) }), () => [R([2, 2, 2, 2]), R([2]), R([2])]);
  check('maxPool2d with stride and padding (distinct values)', (x) => maxPool2d(x, 3, { stride: 2, padding: 1 }).add(maxPool2d(x, 2).sum()), () => [D([1, 2, 5, 5])]);
  check('avgPool2d, counting the padding or not, ceil mode', (x) => avgPool2d(x, 3, { stride: 2, padding: 1 }).add(avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false, ceilMode: true }).sum()), () => [R([1, 2, 5, 5])]);
  check('adaptiveAvgPool2d (overlapping windows)', (x) => adaptiveAvgPool2d(x, [2, 3]).sum().add(adaptiveAvgPool2d(x, 1)), () => [R([1, 2, 5, 4])]);
  check('interpolate bilinear, both corner conventions, up and down', (x) => interpolate(x, [5, 7]).sum().add(interpolate(x, [2, 3], 'bilinear', true)), () => [R([1, 2, 3, 4])]);
  check('interpolate nearest', (x) => interpolate(x, [5, 7], 'nearest'), () => [R([1, 1, 3, 4])]);
});

describe('softmax and losses', () => {
  check('softmax and logSoftmax', (x) => softmax(x, 1).add(logSoftmax(x, 0)), () => [R([3, 4], -2, 2)]);
  check('crossEntropy plain, weighted, label smoothing, ignoreIndex', (x) =>
    crossEntropy(x, i64([1, 0, 3]))
      .add(crossEntropy(x, i64([1, 0, 3]), { weight: tensor([0.5, 2, 1, 1.5], [4], { dtype: 'float64' }) }))
      .add(crossEntropy(x, i64([2, 0, 3]), { labelSmoothing: 0.2 }))
      .add(crossEntropy(x, i64([2, -100, 3])))
      .add(crossEntropy(x, i64([1, 0, 3]), { reduction: 'none', ignoreIndex: 0, labelSmoothing: 0.1 }).sum()),
  () => [R([3, 4], -2, 2)]);
  check('nllLoss', (x) => nllLoss(logSoftmax(x, 1), i64([2, 0])), () => [R([2, 3])]);
  check('klDiv (input and target), batchmean and logTarget', (q, p) =>
    klDiv(logSoftmax(q, 1), softmax(p, 1)).add(klDiv(logSoftmax(q, 1), logSoftmax(p, 1), 'sum', true)),
  () => [R([3, 4], -2, 2), R([3, 4], -2, 2)]);
  check('mseLoss (both arguments)', (a, b) => mseLoss(a, b).add(mseLoss(a, b.mul(2), 'sum')), () => [R([2, 3]), R([2, 3])]);
});

describe('autograd API', () => {
  const v = (data: number[]) => tensor(data, [data.length], { dtype: 'float64', requiresGrad: true });

  ttest('leaf and non-leaf, requiresGrad_', () => {
    const x = v([1, 2]);
    assert.equal(x.requiresGrad, true);
    assert.equal(x.isLeaf, true);
    const y = x.mul(2);
    assert.equal(y.isLeaf, false);
    assert.equal(y.requiresGrad, true);
    const z = tensor([1, 2], [2], { dtype: 'float64' });
    assert.equal(z.requiresGrad, false);
    z.requiresGrad_();
    assert.equal(z.requiresGrad, true);
    assert.equal(x.grad, null, 'no gradient before backward');
  });
  ttest('backward with an explicit gradient (vector-Jacobian product)', () => {
    const x = v([1, 2, 3]);
    x.mul(x).backward(tensor([1, 0.5, -2], [3], { dtype: 'float64' }));
    assertClose(x.grad!, [2 * 1 * 1, 2 * 2 * 0.5, 2 * 3 * -2]);
  });
  ttest('gradients accumulate; retainGraph allows a second backward; without it the second one throws', () => {
    const x = v([1, 2]);
    const y = x.pow(3).sum();
    y.backward(undefined, true);
    assertClose(x.grad!, [3, 12]);
    y.backward();
    assertClose(x.grad!, [6, 24]);
    const z = x.exp().sum();
    z.backward();
    assert.throws(() => z.backward(), TorchError);
  });
  ttest('grad = null resets the accumulated gradient', () => {
    const x = v([1, 2]);
    x.mul(3).sum().backward();
    assertClose(x.grad!, [3, 3]);
    x.grad = null;
    assert.equal(x.grad, null);
    x.mul(x).sum().backward();
    assertClose(x.grad!, [2, 4]);
    x.grad = tensor([10, 20], [2], { dtype: 'float64' });
    x.sum().backward();
    assertClose(x.grad!, [11, 21]);
  });
  ttest('noGrad records nothing, nests, and restores the mode even when fn throws', () => {
    const x = v([1, 2]);
    assert.equal(isGradEnabled(), true);
    const y = noGrad(() => {
      assert.equal(isGradEnabled(), false);
      noGrad(() => assert.equal(isGradEnabled(), false));
      assert.equal(isGradEnabled(), false);
      return x.mul(2);
    });
    assert.equal(y.requiresGrad, false);
    assert.equal(isGradEnabled(), true);
    assert.throws(() => noGrad(() => { throw new Error('boom'); }), /boom/);
    assert.equal(isGradEnabled(), true);
    // in-place update of a leaf under noGrad (the optimiser step) is allowed and not recorded
    noGrad(() => x.add_(tensor([1, 1], [2], { dtype: 'float64' })));
    assertClose(x, [2, 3]);
    assert.equal(x.isLeaf, true);
  });
  ttest('detach cuts the graph and shares the values', () => {
    const x = v([1, 2, 3]);
    const d = x.detach();
    assert.equal(d.requiresGrad, false);
    assertClose(d, [1, 2, 3]);
    x.mul(d).sum().backward(); // d(x * const)/dx = const
    assertClose(x.grad!, [1, 2, 3]);
    noGrad(() => x.mul_(2));
    assertClose(d, [2, 4, 6], {}, 'detach shares storage');
  });
  test('gradients flow through a small network to every parameter', () =>
    tidy(() => {
      const w = tensor(randArray(4 * 1 * 3 * 3, 1, -0.5, 0.5), [4, 1, 3, 3], { dtype: 'float64', requiresGrad: true });
      const fc = tensor(randArray(3 * 4, 2, -0.5, 0.5), [3, 4], { dtype: 'float64', requiresGrad: true });
      const x = tensor(randArray(2 * 6 * 6, 3), [2, 1, 6, 6], { dtype: 'float64' });
      const loss = crossEntropy(linear(adaptiveAvgPool2d(relu(conv2d(x, w, null, { padding: 1 })), 1).flatten(1), fc), i64([0, 2]));
      loss.backward();
      for (const p of [w, fc]) {
        const g = p.grad!;
        assert.deepEqual(g.shape, p.shape);
        assert.ok(g.abs().sum().item() > 0);
      }
    }));
});
