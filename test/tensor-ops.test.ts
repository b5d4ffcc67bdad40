// Op values against hand-computed results (literals, or naive loops in test/helpers/reference.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Tensor, tensor, zeros, ones, full, empty, arange, rand, randn, randint, randperm, bernoulli, zerosLike, onesLike, fullLike,
  randLike, randnLike, manualSeed, getRngState, setRngState, cat, stack, where, matmul, mm, bmm, addmm, einsum, logicalAnd,
  logicalOr, conv2d, batchNorm, maxPool2d, avgPool2d, adaptiveAvgPool2d, interpolate, softmax, logSoftmax, crossEntropy, nllLoss,
  klDiv, mseLoss, oneHot, dropout, pad, linear, relu, foreachMul_, foreachAdd_, foreachNormSq, tidy, type DType,
} from '../src/tensor/index.js';
import { assertClose, assertTensor, assertExact } from './helpers/assert.js';
import { ttest } from './helpers/tidy-test.js';
import { randArray, distinctArray } from './helpers/random.js';
import {
  type Img, conv2dRef, maxPool2dRef, avgPool2dRef, adaptiveAvgPool2dRef, nearestRef, bilinearRef,
} from './helpers/reference.js';

const f64 = (data: number[], shape?: number[]) => tensor(data, shape, { dtype: 'float64' });
const i64 = (data: number[], shape?: number[]) => tensor(data, shape, { dtype: 'int64' });
const img = (shape: Img['shape'], seed: number, distinct = false): Img => {
  const n = shape.reduce((a, b) => a * b, 1);
  return { data: distinct ? distinctArray(n, seed, -2, 2) : randArray(n, seed, -2, 2), shape };
};
const timg = (x: Img) => f64(x.data, x.shape);
const A23 = () => tensor([1, 2, 3, 4, 5, 6], [2, 3]);

describe('creation', () => {
  ttest('zeros, ones, full, empty with shapes and dtypes', () => {
    assertExact(zeros([2, 3]), [2, 3], [0, 0, 0, 0, 0, 0]);
    assert.equal(zeros([2]).dtype, 'float32');
    assertExact(ones([2], { dtype: 'int32' }), [2], [1, 1]);
    assert.equal(ones([2], { dtype: 'int32' }).dtype, 'int32');
    assertExact(full([1, 2], 7.5, { dtype: 'float64' }), [1, 2], [7.5, 7.5]);
    assert.deepEqual(empty([3, 0, 2]).shape, [3, 0, 2]);
    assert.equal(empty([3, 0, 2]).numel, 0);
    assert.deepEqual(zeros([]).shape, []);
    assert.equal(zeros([2], { requiresGrad: true }).requiresGrad, true);
  });
  ttest('arange: end only, start/end/step, float dtype', () => {
    assertExact(arange(4), [4], [0, 1, 2, 3]);
    assert.equal(arange(4).dtype, 'int64');
    assertExact(arange(2, 11, 3), [3], [2, 5, 8]);
    assertClose(arange(0, 1, 0.25, { dtype: 'float32' }), [0, 0.25, 0.5, 0.75]);
  });
  ttest('*Like creation keeps shape and dtype', () => {
    const x = tensor([1, 2, 3, 4, 5, 6], [2, 3], { dtype: 'float64' });
    for (const [t, v] of [[zerosLike(x), 0], [onesLike(x), 1], [fullLike(x, -3), -3]] as const) {
      assert.equal(t.dtype, 'float64');
      assertExact(t, [2, 3], new Array(6).fill(v));
    }
    assert.deepEqual(randLike(x).shape, [2, 3]);
    assert.equal(randnLike(x).dtype, 'float64');
  });
  ttest('random creation: ranges and rough statistics', () => {
    manualSeed(1);
    const u = rand([20000]).toNumbers();
    assert.ok(u.every((v) => v >= 0 && v < 1));
    assert.ok(Math.abs(u.reduce((a, b) => a + b) / u.length - 0.5) < 0.02);
    const g = randn([20000], { dtype: 'float64' }).toNumbers();
    const m = g.reduce((a, b) => a + b) / g.length;
    const v = g.reduce((a, b) => a + (b - m) ** 2, 0) / g.length;
    assert.ok(Math.abs(m) < 0.05 && Math.abs(v - 1) < 0.05, `mean ${m} var ${v}`);
    const ri = randint(3, 7, [1000]).toNumbers();
    assert.ok(ri.every((x) => Number.isInteger(x) && x >= 3 && x < 7));
    assert.deepEqual(new Set(ri), new Set([3, 4, 5, 6]));
    assert.deepEqual(randperm(10).toNumbers().sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assertExact(bernoulli(tensor([0, 1, 0, 1])), [4], [0, 1, 0, 1]);
  });
});

describe('dtypes', () => {
  ttest('typed arrays round trip through tensor()/toArray() for every plain dtype', () => {
    const cases: [DType, ArrayLike<number | bigint>][] = [
      ['float32', new Float32Array([1.5, -0, NaN, Infinity, -3.4028234663852886e38, 1.401298464324817e-45])],
      ['float64', new Float64Array([Math.PI, -0, NaN, -Infinity, Number.MAX_VALUE, Number.MIN_VALUE])],
      ['int32', new Int32Array([-2147483648, 2147483647, 0, -1])],
      ['int64', new BigInt64Array([9007199254740993n, -9223372036854775808n, 9223372036854775807n, -1n])],
      ['uint8', new Uint8Array([0, 1, 128, 255])],
      ['int8', new Int8Array([-128, 127, 0, -1])],
      ['int16', new Int16Array([-32768, 32767, 0, -1])],
    ];
    for (const [dtype, arr] of cases) {
      const t = tensor(arr as Float32Array, [2, arr.length / 2]);
      assert.equal(t.dtype, dtype);
      assert.deepEqual(t.shape, [2, arr.length / 2]);
      const back = t.toArray();
      assert.equal(back.constructor, arr.constructor, dtype);
      for (let i = 0; i < arr.length; i++) assert.ok(Object.is(back[i], arr[i]), `${dtype}[${i}]: ${back[i]} != ${arr[i]}`);
    }
  });
  ttest('numbers to each dtype, and bool', () => {
    assertExact(tensor([1.9, -1.9], [2], { dtype: 'int64' }), [2], [1, -1]);
    assertExact(tensor([3, 4], [2], { dtype: 'int32' }), [2], [3, 4]);
    assertExact(tensor([255, 0], [2], { dtype: 'uint8' }), [2], [255, 0]);
    const b = tensor([1, 0, 1], [3], { dtype: 'bool' });
    assert.equal(b.dtype, 'bool');
    assert.deepEqual(Array.from(b.toArray() as Uint8Array), [1, 0, 1]);
    assertExact(b.logicalNot(), [3], [0, 1, 0]);
    assertExact(tensor(new Uint8Array([0, 2, 1]), [3], { dtype: 'bool' }), [3], [0, 1, 1]);
    assert.equal(tensor(5).item(), 5);
    assert.deepEqual(tensor(5).shape, []);
  });
  test('numbers other than 0/1 become true in a bool tensor', () =>
    tidy(() => assertExact(tensor([0, 3, 1], [3], { dtype: 'bool' }), [3], [0, 1, 1])));
  test('float16 bits in a Uint16Array with dtype bfloat16 are taken as bfloat16 bits', () =>
    tidy(() => assert.equal(tensor(new Uint16Array([0x3f80]), [1], { dtype: 'bfloat16' }).to('float32').item(), 1)));
  ttest('conversions with to(): truncation, bool, half precision', () => {
    assertExact(tensor([-1.7, 1.7, 2.5]).to('int32'), [3], [-1, 1, 2]);
    assertExact(tensor([0, -2, 0.5]).to('bool'), [3], [0, 1, 1]);
    assertExact(tensor([1, 0], [2], { dtype: 'bool' }).to('float32'), [2], [1, 0]);
    const h = tensor([0.1, 1000, 1 / 3]).to('float16');
    assert.equal(h.dtype, 'float16');
    assert.deepEqual(Array.from(h.toArray() as Uint16Array), [0x2e66, 0x63d0, 0x3555]); // IEEE half bit patterns
    assertClose(h.float(), [0.0999755859375, 1000, 0.333251953125], { atol: 0, rtol: 0 });
    const bf = tensor([1, -2, 3.140625]).to('bfloat16');
    assert.deepEqual(Array.from(bf.toArray() as Uint16Array), [0x3f80, 0xc000, 0x4049]);
    assert.equal(tensor([1.5]).double().dtype, 'float64');
    assert.equal(tensor([1.5]).long().dtype, 'int64');
  });
});

describe('arithmetic', () => {
  ttest('binary ops with broadcasting and alpha', () => {
    const a = A23();
    const b = tensor([10, 20, 30]);
    assertTensor(a.add(b), [2, 3], [11, 22, 33, 14, 25, 36]);
    assertTensor(a.add(b, 2), [2, 3], [21, 42, 63, 24, 45, 66]);
    assertTensor(a.sub(b), [2, 3], [-9, -18, -27, -6, -15, -24]);
    assertTensor(a.sub(1, 3), [2, 3], [-2, -1, 0, 1, 2, 3]);
    assertTensor(a.mul(2), [2, 3], [2, 4, 6, 8, 10, 12]);
    assertTensor(a.div(b), [2, 3], [0.1, 0.1, 0.1, 0.4, 0.25, 0.2]);
    assertTensor(a.pow(2), [2, 3], [1, 4, 9, 16, 25, 36]);
    assertTensor(tensor([2, 3]).pow(tensor([3, 2])), [2], [8, 9]);
    assertTensor(tensor([1, 2], [2, 1]).add(b), [2, 3], [11, 21, 31, 12, 22, 32]);
    assertTensor(tensor([1, 5, 3]).maximum(tensor([4, 2, 6])), [3], [4, 5, 6]);
    assertTensor(tensor([1, 5, 3]).minimum(tensor([4, 2, 6])), [3], [1, 2, 3]);
  });
  ttest('integer dtypes stay integer; division is true division', () => {
    const x = i64([7, -7]);
    assert.equal(x.add(i64([1, 1])).dtype, 'int64');
    assertExact(x.mul(3), [2], [21, -21]);
    assert.equal(x.div(2).dtype, 'float32');
    assertClose(x.div(2), [3.5, -3.5]);
  });
  ttest('comparisons give bool tensors', () => {
    const x = tensor([1, 2, 3]);
    const check = (t: Tensor, v: number[]) => {
      assert.equal(t.dtype, 'bool');
      assertExact(t, [3], v);
    };
    check(x.eq(2), [0, 1, 0]);
    check(x.ne(2), [1, 0, 1]);
    check(x.lt(2), [1, 0, 0]);
    check(x.le(2), [1, 1, 0]);
    check(x.gt(2), [0, 0, 1]);
    check(x.ge(2), [0, 1, 1]);
    check(x.eq(tensor([1, 0, 3])), [1, 0, 1]);
    check(logicalAnd(x.gt(1), x.lt(3)), [0, 1, 0]);
    check(logicalOr(x.lt(2), x.gt(2)), [1, 0, 1]);
  });
  ttest('unary ops', () => {
    assertClose(tensor([1, -2]).neg(), [-1, 2]);
    assertClose(f64([0, 1, -1]).exp(), [1, Math.E, 1 / Math.E], { atol: 1e-12 });
    assertClose(f64([1, Math.E, 0.5]).log(), [0, 1, Math.log(0.5)], { atol: 1e-12 });
    assertClose(tensor([4, 9, 2]).sqrt(), [2, 3, Math.SQRT2]);
    assertClose(tensor([4, 0.25]).rsqrt(), [0.5, 2]);
    assertClose(tensor([-2, 3, -0.5]).abs(), [2, 3, 0.5]);
    assertClose(tensor([-2, 0, 3]).sign(), [-1, 0, 1]);
    assertClose(tensor([-1.5, 1.5, 2.7]).floor(), [-2, 1, 2]);
    assertClose(tensor([0.5, 1.5, 2.5, -0.5, 1.6]).round(), [0, 2, 2, -0, 2]); // half to even
    const xs = [-3, -0.5, 0, 2];
    assertClose(f64(xs).sigmoid(), xs.map((v) => 1 / (1 + Math.exp(-v))), { atol: 1e-12 });
    assertClose(f64(xs).tanh(), xs.map(Math.tanh), { atol: 1e-12 });
    assertClose(f64(xs).relu(), [0, 0, 0, 2]);
    assertClose(relu(f64(xs)), [0, 0, 0, 2]);
    assertClose(tensor([-1, 0.5, 2]).clamp(0, 1), [0, 0.5, 1]);
    assertClose(tensor([-1, 0.5, 2]).clamp(0), [0, 0.5, 2]);
    assertClose(tensor([-1, 0.5, 2]).clamp(null, 1), [-1, 0.5, 1]);
    assertExact(tensor([1, Infinity, NaN, -Infinity]).isfinite(), [4], [1, 0, 0, 0]);
    assertExact(tensor([1, Infinity, NaN]).isnan(), [3], [0, 0, 1]);
  });
  ttest('where picks elementwise with broadcasting', () => {
    const c = tensor([1, 0, 1], [3], { dtype: 'bool' });
    assertTensor(where(c, tensor([1, 2, 3]), tensor([-1, -2, -3])), [3], [1, -2, 3]);
    assertTensor(where(c, tensor([1, 2, 3]), tensor([0])), [3], [1, 0, 3]);
  });
  ttest('in-place ops change the tensor and return it', () => {
    const x = tensor([1, 2, 3]);
    assert.equal(x.add_(tensor([1, 1, 1]), 2), x);
    assertClose(x, [3, 4, 5]);
    x.mul_(2);
    assertClose(x, [6, 8, 10]);
    x.div_(tensor([2, 4, 5]));
    assertClose(x, [3, 2, 2]);
    x.addcmul_(tensor([1, 2, 3]), tensor([2, 2, 2]), 0.5); // x += 0.5 a b
    assertClose(x, [4, 4, 5]);
    x.addcdiv_(tensor([4, 4, 4]), tensor([2, 4, 8]), 2); // x += 2 a / b
    assertClose(x, [8, 6, 6]);
    x.copy_(tensor([9, 8, 7]));
    assertClose(x, [9, 8, 7]);
    x.fill_(-1);
    assertClose(x, [-1, -1, -1]);
    x.zero_();
    assertClose(x, [0, 0, 0]);
    const u = zeros([5000]).uniform_(2, 3).toNumbers();
    assert.ok(u.every((v) => v >= 2 && v < 3));
    const g = zeros([5000], { dtype: 'float64' }).normal_(5, 0.1).toNumbers();
    assert.ok(Math.abs(g.reduce((a, b) => a + b) / g.length - 5) < 0.01);
  });
  ttest('foreach ops over tensor lists', () => {
    const ts = [tensor([1, 2]), tensor([3])];
    foreachMul_(ts, 2);
    assertClose(ts[0]!, [2, 4]);
    assertClose(ts[1]!, [6]);
    foreachAdd_(ts, [tensor([1, 1]), tensor([10])], -1);
    assertClose(ts[0]!, [1, 3]);
    assertClose(ts[1]!, [-4]);
    assert.equal(foreachNormSq(ts), 1 + 9 + 16);
  });
});

describe('reductions', () => {
  ttest('sum and mean over all, one or several dims, with keepdim', () => {
    const x = A23();
    assertTensor(x.sum(), [], [21]);
    assertTensor(x.sum(0), [3], [5, 7, 9]);
    assertTensor(x.sum(1, true), [2, 1], [6, 15]);
    assertTensor(x.sum([0, 1]), [], [21]);
    assertTensor(x.sum(-1), [2], [6, 15]);
    assertTensor(x.mean(), [], [3.5]);
    assertTensor(x.mean(1), [2], [2, 5]);
    assertTensor(x.mean(0, true), [1, 3], [2.5, 3.5, 4.5]);
  });
  ttest('var with and without Bessel correction', () => {
    const x = f64([1, 2, 3, 4, 5, 6], [2, 3]);
    assertTensor(x.var(), [], [17.5 / 5], { atol: 1e-12 });
    assertTensor(x.var(null, 0), [], [17.5 / 6], { atol: 1e-12 });
    assertTensor(x.var(1), [2], [1, 1], { atol: 1e-12 });
    assertTensor(x.var(1, 0), [2], [2 / 3, 2 / 3], { atol: 1e-12 });
    assertTensor(x.var(0, 1, true), [1, 3], [4.5, 4.5, 4.5], { atol: 1e-12 });
  });
  ttest('logsumexp, amax, amin', () => {
    const x = f64([1, 2, 3, 4, 5, 6], [2, 3]);
    const lse = (v: number[]) => Math.log(v.reduce((s, z) => s + Math.exp(z), 0));
    assertTensor(x.logsumexp(1), [2], [lse([1, 2, 3]), lse([4, 5, 6])], { atol: 1e-12 });
    assertTensor(x.logsumexp(0, true), [1, 3], [lse([1, 4]), lse([2, 5]), lse([3, 6])], { atol: 1e-12 });
    assertTensor(f64([1000, 1000]).logsumexp(0), [], [1000 + Math.LN2], { atol: 1e-9 }); // stable
    assertTensor(x.amax(), [], [6]);
    assertTensor(x.amax(1), [2], [3, 6]);
    assertTensor(x.amin(0, true), [1, 3], [1, 2, 3]);
  });
  ttest('max/min with indices, argmax/argmin', () => {
    const x = tensor([3, 1, 2, 0, 5, 4], [2, 3]);
    const mx = x.max(1);
    assertTensor(mx.values, [2], [3, 5]);
    assertExact(mx.indices, [2], [0, 1]);
    const mn = x.min(0, true);
    assertTensor(mn.values, [1, 3], [0, 1, 2]);
    assertExact(mn.indices, [1, 3], [1, 0, 0]);
    assertExact(x.argmax(), [], [4]);
    assertExact(x.argmax(1, true), [2, 1], [0, 1]);
    assertExact(x.argmin(0), [3], [1, 0, 0]);
  });
  ttest('all, any, cumsum, sort, topk', () => {
    const b = tensor([1, 0, 1], [3], { dtype: 'bool' });
    assertExact(b.all(), [], [0]);
    assertExact(b.any(), [], [1]);
    assertExact(ones([2], { dtype: 'bool' }).all(), [], [1]);
    assertTensor(A23().cumsum(1), [2, 3], [1, 3, 6, 4, 9, 15]);
    assertTensor(A23().cumsum(0), [2, 3], [1, 2, 3, 5, 7, 9]);
    const s = tensor([3, 1, 2]).sort();
    assertTensor(s.values, [3], [1, 2, 3]);
    assertExact(s.indices, [3], [1, 2, 0]);
    const d = tensor([3, 1, 2]).sort(-1, true);
    assertTensor(d.values, [3], [3, 2, 1]);
    assertExact(d.indices, [3], [0, 2, 1]);
    const k = tensor([1, 5, 3, 4]).topk(2);
    assertTensor(k.values, [2], [5, 4]);
    assertExact(k.indices, [2], [1, 3]);
  });
});

describe('shape ops', () => {
  const a234 = () => arange(24, undefined, 1, { dtype: 'float32' }).reshape([2, 3, 4]);
  ttest('reshape, view, flatten, squeeze, unsqueeze', () => {
    assertTensor(A23().reshape([3, 2]), [3, 2], [1, 2, 3, 4, 5, 6]);
    assertTensor(A23().reshape([-1]), [6], [1, 2, 3, 4, 5, 6]);
    assertTensor(A23().view([1, 6]), [1, 6], [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(a234().flatten().shape, [24]);
    assert.deepEqual(a234().flatten(1).shape, [2, 12]);
    assert.deepEqual(zeros([1, 3, 1]).squeeze().shape, [3]);
    assert.deepEqual(zeros([1, 3, 1]).squeeze(0).shape, [3, 1]);
    assert.deepEqual(zeros([3]).unsqueeze(0).shape, [1, 3]);
    assert.deepEqual(zeros([3]).unsqueeze(-1).shape, [3, 1]);
  });
  ttest('permute and transpose move elements to the right places', () => {
    const p = a234().permute([2, 0, 1]);
    assert.deepEqual(p.shape, [4, 2, 3]);
    const want: number[] = [];
    for (let k = 0; k < 4; k++) for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) want.push(i * 12 + j * 4 + k);
    assertClose(p, want);
    assert.equal(p.isContiguous(), false);
    assert.equal(p.contiguous().isContiguous(), true);
    assertTensor(A23().transpose(0, 1), [3, 2], [1, 4, 2, 5, 3, 6]);
    assertTensor(A23().t(), [3, 2], [1, 4, 2, 5, 3, 6]);
    const t = a234().transpose(-1, 0);
    assert.deepEqual(t.shape, [4, 3, 2]);
    assert.equal(t.select(0, 1).select(0, 2).select(0, 1).item(), 1 * 12 + 2 * 4 + 1);
  });
  ttest('expand and repeat', () => {
    assertTensor(tensor([1, 2, 3], [1, 3]).expand([2, 3]), [2, 3], [1, 2, 3, 1, 2, 3]);
    assertTensor(tensor([1, 2], [2, 1]).expand([2, 2]), [2, 2], [1, 1, 2, 2]);
    assertTensor(tensor([1, 2], [1, 2]).repeat([2, 2]), [2, 4], [1, 2, 1, 2, 1, 2, 1, 2]);
  });
  ttest('cat and stack', () => {
    const a = tensor([1, 2, 3, 4], [2, 2]);
    const b = tensor([5, 6], [1, 2]);
    assertTensor(cat([a, b]), [3, 2], [1, 2, 3, 4, 5, 6]);
    assertTensor(cat([a, b.t()], 1), [2, 3], [1, 2, 5, 3, 4, 6]);
    assertTensor(cat([a]), [2, 2], [1, 2, 3, 4]);
    const x = tensor([1, 2]);
    const y = tensor([3, 4]);
    assertTensor(stack([x, y]), [2, 2], [1, 2, 3, 4]);
    assertTensor(stack([x, y], 1), [2, 2], [1, 3, 2, 4]);
    assertTensor(stack([x, y, x], -1), [2, 3], [1, 3, 1, 2, 4, 2]);
  });
  ttest('split, chunk, narrow, select', () => {
    const x = arange(10, undefined, 1, { dtype: 'float32' }).reshape([2, 5]);
    const s = x.split(2, 1);
    assert.deepEqual(s.map((t) => t.shape), [[2, 2], [2, 2], [2, 1]]);
    assertClose(s[2]!, [4, 9]);
    const l = x.split([1, 4], 1);
    assert.deepEqual(l.map((t) => t.shape), [[2, 1], [2, 4]]);
    assertClose(l[1]!, [1, 2, 3, 4, 6, 7, 8, 9]);
    const c = x.chunk(3, 1);
    assert.deepEqual(c.map((t) => t.shape), [[2, 2], [2, 2], [2, 1]]);
    assertClose(c[1]!, [2, 3, 7, 8]);
    assertTensor(x.narrow(1, 1, 2), [2, 2], [1, 2, 6, 7]);
    assertTensor(x.narrow(0, 1, 1), [1, 5], [5, 6, 7, 8, 9]);
    assertTensor(x.select(1, 3), [2], [3, 8]);
    assertTensor(x.select(0, -1), [5], [5, 6, 7, 8, 9]);
  });
  ttest('indexSelect, indexAdd, gather, scatter, maskedFill, flip', () => {
    const x = tensor([1, 2, 3, 4, 5, 6], [3, 2]);
    assertTensor(x.indexSelect(0, i64([2, 0, 2])), [3, 2], [5, 6, 1, 2, 5, 6]);
    assertTensor(x.indexSelect(1, i64([1])), [3, 1], [2, 4, 6]);
    const src = tensor([1, 2, 3, 4, 5, 6], [3, 2]);
    assertTensor(zeros([3, 2]).indexAdd(0, i64([0, 2, 0]), src), [3, 2], [6, 8, 0, 0, 3, 4]);
    assertTensor(ones([3, 2]).indexAdd(0, i64([0, 2, 0]), src, 2), [3, 2], [13, 17, 1, 1, 7, 9]);
    assertTensor(tensor([1, 2, 3, 4], [2, 2]).gather(1, i64([0, 0, 1, 0], [2, 2])), [2, 2], [1, 1, 4, 3]);
    assertTensor(tensor([1, 2, 3, 4], [2, 2]).gather(0, i64([1, 0], [1, 2])), [1, 2], [3, 2]);
    const sc = zeros([3, 3]).scatter(0, i64([0, 1, 2, 2, 0, 1], [2, 3]), tensor([1, 2, 3, 4, 5, 6], [2, 3]));
    assertTensor(sc, [3, 3], [1, 5, 0, 0, 2, 6, 4, 0, 3]);
    const mask = tensor([1, 0, 0, 1], [2, 2], { dtype: 'bool' });
    assertTensor(tensor([1, 2, 3, 4], [2, 2]).maskedFill(mask, -1), [2, 2], [-1, 2, 3, -1]);
    assertTensor(tensor([1, 2, 3, 4], [2, 2]).maskedFill(tensor([0, 1], [2], { dtype: 'bool' }), 9), [2, 2], [1, 9, 3, 9]);
    assertTensor(A23().flip([1]), [2, 3], [3, 2, 1, 6, 5, 4]);
    assertTensor(A23().flip([0, 1]), [2, 3], [6, 5, 4, 3, 2, 1]);
  });
  ttest('pad: constant, reflect, replicate', () => {
    const x = tensor([1, 2, 3, 4, 5, 6], [1, 1, 2, 3]);
    // pads are (left, right, top, bottom)
    assertTensor(pad(x, [1, 1, 1, 0], 'constant', 9), [1, 1, 3, 5], [9, 9, 9, 9, 9, 9, 1, 2, 3, 9, 9, 4, 5, 6, 9]);
    assertTensor(pad(x, [0, 2]), [1, 1, 2, 5], [1, 2, 3, 0, 0, 4, 5, 6, 0, 0]);
    const row = x.reshape([1, 2, 3]);
    assertTensor(pad(row, [1, 1], 'reflect'), [1, 2, 5], [2, 1, 2, 3, 2, 5, 4, 5, 6, 5]);
    assertTensor(pad(row, [2, 1], 'replicate'), [1, 2, 6], [1, 1, 1, 2, 3, 3, 4, 4, 4, 5, 6, 6]);
    // reflect in two dims: index -1 -> 1, n -> n-2
    const refl = (i: number, n: number) => (i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i);
    const want: number[] = [];
    for (let i = -1; i < 3; i++) for (let j = -1; j < 4; j++) want.push(1 + refl(i, 2) * 3 + refl(j, 3));
    assertTensor(pad(x, [1, 1, 1, 1], 'reflect'), [1, 1, 4, 5], want);
  });
});

/** Naive batched matrix product on flat row-major arrays. */
function matmulRef(a: number[], b: number[], batch: number, n: number, k: number, m: number, bBatched = true): number[] {
  const out: number[] = [];
  for (let z = 0; z < batch; z++)
    for (let i = 0; i < n; i++)
      for (let j = 0; j < m; j++) {
        let s = 0;
        for (let q = 0; q < k; q++) s += a[z * n * k + i * k + q]! * b[(bBatched ? z * k * m : 0) + q * m + j]!;
        out.push(s);
      }
  return out;
}

describe('matrix products', () => {
  ttest('matmul, mm: matrix, vector and broadcast batch', () => {
    const a = tensor([1, 2, 3, 4], [2, 2]);
    const b = tensor([5, 6, 7, 8], [2, 2]);
    assertTensor(matmul(a, b), [2, 2], [19, 22, 43, 50]);
    assertTensor(a.matmul(b), [2, 2], [19, 22, 43, 50]);
    assertTensor(mm(a, b), [2, 2], [19, 22, 43, 50]);
    assertTensor(matmul(A23(), tensor([1, 0, -1])), [2], [-2, -2]);
    const x = randArray(12, 1);
    const w = randArray(6, 2);
    assertTensor(matmul(f64(x, [2, 2, 3]), f64(w, [3, 2])), [2, 2, 2], matmulRef(x, w, 2, 2, 3, 2, false), { atol: 1e-12 });
  });
  ttest('bmm and addmm', () => {
    const x = randArray(2 * 3 * 4, 3);
    const y = randArray(2 * 4 * 2, 4);
    assertTensor(bmm(f64(x, [2, 3, 4]), f64(y, [2, 4, 2])), [2, 3, 2], matmulRef(x, y, 2, 3, 4, 2), { atol: 1e-12 });
    const p = matmulRef([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, 2, 2);
    const bias = [1, -1];
    const want = p.map((v, i) => 2 * bias[i % 2]! + 3 * v);
    assertTensor(addmm(tensor(bias), tensor([1, 2, 3, 4], [2, 2]), tensor([5, 6, 7, 8], [2, 2]), 2, 3), [2, 2], want);
    assertTensor(addmm(tensor(bias), tensor([1, 2, 3, 4], [2, 2]), tensor([5, 6, 7, 8], [2, 2])), [2, 2], p.map((v, i) => v + bias[i % 2]!));
  });
  ttest('einsum: product, batch product, diagonal, outer, transpose, total', () => {
    const x = randArray(6, 5);
    const y = randArray(12, 6);
    assertTensor(einsum('ij,jk->ik', f64(x, [2, 3]), f64(y, [3, 4])), [2, 4], matmulRef(x, y, 1, 2, 3, 4), { atol: 1e-12 });
    assertTensor(einsum('bij,bjk->bik', f64(y, [2, 2, 3]), f64(y, [2, 3, 2])), [2, 2, 2], matmulRef(y, y, 2, 2, 3, 2), { atol: 1e-12 });
    assertTensor(einsum('ii->i', tensor([1, 2, 3, 4], [2, 2])), [2], [1, 4]);
    assertTensor(einsum('i,j->ij', tensor([1, 2]), tensor([3, 4, 5])), [2, 3], [3, 4, 5, 6, 8, 10]);
    assertTensor(einsum('ij->ji', A23()), [3, 2], [1, 4, 2, 5, 3, 6]);
    assertTensor(einsum('ij->', A23()), [], [21]);
  });
  ttest('linear = x w^T + b', () => {
    const x = randArray(6, 7);
    const w = randArray(12, 8);
    const b = [0.5, -1, 2, 0];
    const wt: number[] = [];
    for (let q = 0; q < 3; q++) for (let o = 0; o < 4; o++) wt.push(w[o * 3 + q]!);
    const want = matmulRef(x, wt, 1, 2, 3, 4).map((v, i) => v + b[i % 4]!);
    assertTensor(linear(f64(x, [2, 3]), f64(w, [4, 3]), f64(b)), [2, 4], want, { atol: 1e-12 });
    assertTensor(linear(f64(x, [2, 3]), f64(w, [4, 3])), [2, 4], matmulRef(x, wt, 1, 2, 3, 4), { atol: 1e-12 });
  });
});

describe('convolution and normalisation', () => {
  ttest('conv2d against loops: plain, and stride + padding + dilation + groups + bias', () => {
    const x = img([2, 4, 5, 6], 11);
    const w1 = img([3, 4, 3, 3], 12);
    const r1 = conv2dRef(x, w1, null);
    assertTensor(conv2d(timg(x), timg(w1)), r1.shape, r1.data, { atol: 1e-12 });
    const w2 = img([6, 2, 3, 2], 13);
    const bias = randArray(6, 14);
    const o = { stride: [2, 1] as [number, number], padding: [1, 2] as [number, number], dilation: [1, 2] as [number, number], groups: 2 };
    const r2 = conv2dRef(x, w2, bias, o);
    assert.deepEqual(r2.shape, [2, 6, 3, 8]);
    assertTensor(conv2d(timg(x), timg(w2), f64(bias), o), r2.shape, r2.data, { atol: 1e-12 });
    const dw = img([4, 1, 3, 3], 15); // depthwise, as in ShuffleNetV2
    const r3 = conv2dRef(x, dw, null, { stride: [2, 2], padding: [1, 1], groups: 4 });
    assertTensor(conv2d(timg(x), timg(dw), null, { stride: 2, padding: 1, groups: 4 }), r3.shape, r3.data, { atol: 1e-12 });
  });

  /** Per-channel batch statistics over N, H, W of a flat NCHW array. */
  function channelStats(x: Img): { mean: number[]; biased: number[]; unbiased: number[] } {
    const [N, C, H, W] = x.shape;
    const mean: number[] = [];
    const biased: number[] = [];
    const unbiased: number[] = [];
    for (let c = 0; c < C; c++) {
      const v: number[] = [];
      for (let n = 0; n < N; n++) for (let k = 0; k < H * W; k++) v.push(x.data[(n * C + c) * H * W + k]!);
      const m = v.reduce((a, b) => a + b) / v.length;
      const ss = v.reduce((a, b) => a + (b - m) ** 2, 0);
      mean.push(m);
      biased.push(ss / v.length);
      unbiased.push(ss / (v.length - 1));
    }
    return { mean, biased, unbiased };
  }
  const normed = (x: Img, mean: number[], v: number[], w: number[], b: number[], eps: number): number[] => {
    const [, C, H, W] = x.shape;
    return x.data.map((z, i) => {
      const c = Math.floor(i / (H * W)) % C;
      return ((z - mean[c]!) / Math.sqrt(v[c]! + eps)) * w[c]! + b[c]!;
    });
  };

  ttest('batchNorm training: batch statistics, running stats updated with momentum', () => {
    const x = img([3, 2, 2, 2], 21);
    const { mean, biased, unbiased } = channelStats(x);
    const w = [1.5, -0.5];
    const b = [0.1, 0.2];
    const rm = f64([0.5, -1]);
    const rv = f64([2, 3]);
    const y = batchNorm(timg(x), { weight: f64(w), bias: f64(b), runningMean: rm, runningVar: rv, training: true, momentum: 0.2, eps: 1e-3 });
    assertTensor(y, x.shape, normed(x, mean, biased, w, b, 1e-3), { atol: 1e-10 });
    assertClose(rm, [0.8 * 0.5 + 0.2 * mean[0]!, 0.8 * -1 + 0.2 * mean[1]!], { atol: 1e-12 });
    assertClose(rv, [0.8 * 2 + 0.2 * unbiased[0]!, 0.8 * 3 + 0.2 * unbiased[1]!], { atol: 1e-12 });
    // without affine parameters or running stats
    assertTensor(batchNorm(timg(x), { training: true }), x.shape, normed(x, mean, biased, [1, 1], [0, 0], 1e-5), { atol: 1e-10 });
  });
  ttest('batchNorm eval: uses running stats and leaves them alone', () => {
    const x = img([2, 2, 2, 3], 22);
    const rm = f64([0.5, -1]);
    const rv = f64([2, 3]);
    const y = batchNorm(timg(x), { weight: f64([2, 1]), bias: f64([0, 1]), runningMean: rm, runningVar: rv, training: false });
    assertTensor(y, x.shape, normed(x, [0.5, -1], [2, 3], [2, 1], [0, 1], 1e-5), { atol: 1e-10 });
    assertClose(rm, [0.5, -1], { atol: 0, rtol: 0 });
    assertClose(rv, [2, 3], { atol: 0, rtol: 0 });
  });
});

describe('pooling and resizing', () => {
  const x = img([2, 2, 5, 5], 31, true);
  ttest('maxPool2d against loops', () => {
    for (const [k, o] of [
      [[2, 2], {}],
      [[3, 3], { stride: [2, 2], padding: [1, 1] }],
      [[2, 2], { stride: [2, 2], ceilMode: true }],
      [[3, 2], { stride: [1, 2] }],
    ] as [[number, number], { stride?: [number, number]; padding?: [number, number]; ceilMode?: boolean }][]) {
      const r = maxPool2dRef(x, k, o);
      assertTensor(maxPool2d(timg(x), k, o), r.shape, r.data, { atol: 0, rtol: 0 }, `maxPool2d k=${k} ${JSON.stringify(o)}`);
    }
  });
  ttest('avgPool2d against loops, with and without counting the padding', () => {
    for (const [k, o] of [
      [[2, 2], {}],
      [[3, 3], { stride: [2, 2], padding: [1, 1] }],
      [[3, 3], { stride: [2, 2], padding: [1, 1], countIncludePad: false }],
      [[2, 2], { stride: [2, 2], ceilMode: true }],
      [[3, 3], { stride: [2, 2], padding: [1, 1], ceilMode: true, countIncludePad: false }],
    ] as [[number, number], { stride?: [number, number]; padding?: [number, number]; ceilMode?: boolean; countIncludePad?: boolean }][]) {
      const r = avgPool2dRef(x, k, o);
      assertTensor(avgPool2d(timg(x), k, o), r.shape, r.data, { atol: 1e-12 }, `avgPool2d k=${k} ${JSON.stringify(o)}`);
    }
  });
  ttest('adaptiveAvgPool2d against loops (overlapping windows, global)', () => {
    for (const s of [[2, 3], [1, 1], [5, 5], [3, 2]] as [number, number][]) {
      const r = adaptiveAvgPool2dRef(x, s);
      assertTensor(adaptiveAvgPool2d(timg(x), s), r.shape, r.data, { atol: 1e-12 }, `adaptive ${s}`);
    }
  });
  ttest('interpolate nearest and bilinear (both corner conventions), up and down', () => {
    const small: Img = { data: [0, 1, 2, 3, 4, 5], shape: [1, 1, 2, 3] };
    assertTensor(interpolate(timg(small), [4, 5], 'nearest'), [1, 1, 4, 5], [0, 0, 1, 1, 2, 0, 0, 1, 1, 2, 3, 3, 4, 4, 5, 3, 3, 4, 4, 5]);
    for (const [inp, size] of [[small, [4, 5]], [x, [3, 4]], [x, [7, 8]]] as [Img, [number, number]][]) {
      const n = nearestRef(inp, size);
      assertTensor(interpolate(timg(inp), size, 'nearest'), n.shape, n.data, { atol: 0 }, `nearest ${size}`);
      for (const ac of [false, true]) {
        const r = bilinearRef(inp, size, ac);
        assertTensor(interpolate(timg(inp), size, 'bilinear', ac), r.shape, r.data, { atol: 1e-12 }, `bilinear ${size} ${ac}`);
      }
    }
    // a hand-computed value: half-pixel centres, 2 -> 4 in width: x = 0.25 -> 0.75*a + 0.25*b
    assertClose(interpolate(f64([0, 4], [1, 1, 1, 2]), [1, 4]), [0, 1, 3, 4]);
    assertClose(interpolate(f64([0, 3], [1, 1, 1, 2]), [1, 4], 'bilinear', true), [0, 1, 2, 3]);
  });
});

describe('softmax and losses', () => {
  const logits = randArray(12, 41, -3, 3);
  const logp = (row: number[]) => {
    const m = Math.max(...row);
    const l = Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) + m;
    return row.map((v) => v - l);
  };
  const rows = [logits.slice(0, 4), logits.slice(4, 8), logits.slice(8, 12)];
  const lp = rows.map(logp);

  ttest('softmax and logSoftmax along a dim', () => {
    assertTensor(softmax(f64(logits, [3, 4]), 1), [3, 4], lp.flat().map(Math.exp), { atol: 1e-12 });
    assertTensor(logSoftmax(f64(logits, [3, 4]), -1), [3, 4], lp.flat(), { atol: 1e-12 });
    const cols = logSoftmax(f64(logits, [3, 4]), 0).t().contiguous().toNumbers();
    for (let c = 0; c < 4; c++) assertClose(cols.slice(3 * c, 3 * c + 3), logp([logits[c]!, logits[4 + c]!, logits[8 + c]!]), { atol: 1e-12 });
    assertClose(softmax(f64([1000, 1000, -Infinity]), 0), [0.5, 0.5, 0]);
  });
  ttest('crossEntropy: mean/sum/none, class weights, label smoothing, ignoreIndex', () => {
    const x = f64(logits, [3, 4]);
    const tgt = [1, 0, 3];
    const nll = tgt.map((t, i) => -lp[i]![t]!);
    const mean = (v: number[]) => v.reduce((a, b) => a + b) / v.length;
    assertTensor(crossEntropy(x, i64(tgt)), [], [mean(nll)], { atol: 1e-12 });
    assertTensor(crossEntropy(x, i64(tgt), { reduction: 'sum' }), [], [nll[0]! + nll[1]! + nll[2]!], { atol: 1e-12 });
    assertTensor(crossEntropy(x, i64(tgt), { reduction: 'none' }), [3], nll, { atol: 1e-12 });
    const cw = [1, 2, 3, 4];
    const wsum = tgt.reduce((s, t) => s + cw[t]!, 0);
    assertTensor(crossEntropy(x, i64(tgt), { weight: f64(cw) }), [], [tgt.reduce((s, t, i) => s + cw[t]! * nll[i]!, 0) / wsum], { atol: 1e-12 });
    const eps = 0.1;
    const smooth = tgt.map((t, i) => (1 - eps) * -lp[i]![t]! + (eps / 4) * -lp[i]!.reduce((a, b) => a + b));
    assertTensor(crossEntropy(x, i64(tgt), { labelSmoothing: eps }), [], [mean(smooth)], { atol: 1e-12 });
    assertTensor(crossEntropy(x, i64([1, -100, 3])), [], [(nll[0]! + nll[2]!) / 2], { atol: 1e-12 });
    assertTensor(crossEntropy(x, i64([1, 0, 3]), { ignoreIndex: 0, labelSmoothing: eps }), [], [(smooth[0]! + smooth[2]!) / 2], { atol: 1e-12 });
    assertTensor(nllLoss(logSoftmax(x, 1), i64(tgt)), [], [mean(nll)], { atol: 1e-12 });
    assertTensor(nllLoss(logSoftmax(x, 1), i64([2, 2, 3]), 'mean', 2), [], [-lp[2]![3]!], { atol: 1e-12 });
  });
  ttest('klDiv: batchmean, sum, mean, none, and log-space targets', () => {
    const q = f64(logits, [3, 4]);
    const p = lp.map((r) => r.map(Math.exp)); // target probabilities from the same rows, shifted
    const pt = [p[1]!, p[2]!, p[0]!];
    const logq = lp.flat();
    const terms = pt.flat().map((v, i) => v * (Math.log(v) - logq[i]!));
    const sum = terms.reduce((a, b) => a + b);
    const inp = logSoftmax(q, 1);
    assertTensor(klDiv(inp, f64(pt.flat(), [3, 4])), [], [sum / 3], { atol: 1e-12 });
    assertTensor(klDiv(inp, f64(pt.flat(), [3, 4]), 'sum'), [], [sum], { atol: 1e-12 });
    assertTensor(klDiv(inp, f64(pt.flat(), [3, 4]), 'mean'), [], [sum / 12], { atol: 1e-12 });
    assertTensor(klDiv(inp, f64(pt.flat(), [3, 4]), 'none'), [3, 4], terms, { atol: 1e-12 });
    assertTensor(klDiv(inp, f64(pt.flat().map(Math.log), [3, 4]), 'batchmean', true), [], [sum / 3], { atol: 1e-12 });
    assertTensor(klDiv(inp, inp.exp()), [], [0], { atol: 1e-12 });
  });
  ttest('mseLoss', () => {
    const a = [1, 2, 3, 4];
    const b = [1.5, 0, 3, -1];
    const sq = a.map((v, i) => (v - b[i]!) ** 2);
    assertTensor(mseLoss(f64(a), f64(b)), [], [sq.reduce((s, v) => s + v) / 4], { atol: 1e-12 });
    assertTensor(mseLoss(f64(a), f64(b), 'sum'), [], [sq.reduce((s, v) => s + v)], { atol: 1e-12 });
    assertTensor(mseLoss(f64(a, [2, 2]), f64(b, [2, 2]), 'none'), [2, 2], sq, { atol: 1e-12 });
  });
  ttest('oneHot', () => {
    const o = oneHot(i64([0, 2, 1]), 4);
    assert.equal(o.dtype, 'int64');
    assertExact(o, [3, 4], [1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0]);
    assertExact(oneHot(i64([1, 2])), [2, 3], [0, 1, 0, 0, 0, 1]);
  });
});

describe('dropout and seeding', () => {
  ttest('dropout: p=0 and eval mode are the identity; p=0.5 zeroes about half and doubles the rest', () => {
    const x = randn([1000]);
    assertClose(dropout(x, 0), x.toNumbers(), { atol: 0, rtol: 0 });
    assertClose(dropout(x, 0.5, false), x.toNumbers(), { atol: 0, rtol: 0 });
    const y = dropout(ones([20000]), 0.5).toNumbers();
    assert.ok(y.every((v) => v === 0 || v === 2), 'values are 0 or 1/(1-p)');
    const zerosFrac = y.filter((v) => v === 0).length / y.length;
    assert.ok(zerosFrac > 0.47 && zerosFrac < 0.53, `zeroed fraction ${zerosFrac}`);
    const kept = dropout(ones([100]), 0.2).toNumbers().filter((v) => v !== 0);
    assert.ok(kept.length > 50);
    assertClose(kept, new Array(kept.length).fill(1.25));
  });
  ttest('manualSeed makes every random op reproducible; other seeds differ', () => {
    const draw = () => [rand([4]), randn([4]), randint(0, 1000, [4]), randperm(8), dropout(ones([16]), 0.5), zeros([4]).uniform_(0, 1)].map((t) => t.toNumbers());
    manualSeed(123);
    const a = draw();
    manualSeed(123);
    const b = draw();
    manualSeed(124);
    const c = draw();
    assert.deepEqual(a, b);
    assert.notDeepEqual(a[0], c[0]);
    assert.notDeepEqual(a[1], c[1]);
  });
  ttest('getRngState/setRngState restore the generator', () => {
    manualSeed(5);
    rand([3]);
    const state = getRngState();
    const first = randn([5]).toNumbers();
    rand([7]);
    setRngState(state);
    assert.deepEqual(randn([5]).toNumbers(), first);
  });
});
