// nn layers and init, against plain-JS reference computations.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, empty, tidy, manualSeed } from '../src/tensor/index.js';
import {
  Conv2d, Linear, BatchNorm2d, ReLU, MaxPool2d, AdaptiveAvgPool2d, Dropout, Flatten, Identity, Sequential, init,
} from '../src/nn/index.js';
import { assertClose, assertTensor } from './helpers/assert.js';
import { randArray } from './helpers/random.js';

/** Direct convolution in float64 over flat NCHW arrays. */
function convRef(
  x: number[], [n, c, h, w]: number[], wt: number[], [o, cg, kh, kw]: number[], bias: number[] | null,
  stride: number, pad: number, dil: number, groups: number,
): { out: number[]; shape: number[] } {
  const oh = Math.floor((h + 2 * pad - dil * (kh - 1) - 1) / stride) + 1;
  const ow = Math.floor((w + 2 * pad - dil * (kw - 1) - 1) / stride) + 1;
  const og = o / groups;
  const out: number[] = [];
  for (let b = 0; b < n; b++)
    for (let oc = 0; oc < o; oc++)
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          let s = bias ? bias[oc]! : 0;
          const g = Math.floor(oc / og);
          for (let ci = 0; ci < cg; ci++)
            for (let u = 0; u < kh; u++)
              for (let v = 0; v < kw; v++) {
                const y = i * stride - pad + u * dil;
                const z = j * stride - pad + v * dil;
                if (y < 0 || y >= h || z < 0 || z >= w) continue;
                s += x[((b * c + g * cg + ci) * h + y) * w + z]! * wt[((oc * cg + ci) * kh + u) * kw + v]!;
              }
          out.push(s);
        }
  return { out, shape: [n, o, oh, ow] };
}

const meanStd = (a: number[]): { mean: number; std: number } => {
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  return { mean, std: Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length) };
};

describe('Conv2d', () => {
  test('matches a direct convolution (stride, padding, dilation, groups, bias)', () => {
    manualSeed(10);
    for (const [stride, pad, dil, groups] of [[1, 0, 1, 1], [2, 1, 1, 2], [1, 2, 2, 1], [2, 1, 1, 4]] as const) {
      const conv = new Conv2d(4, 8, 3, { stride, padding: pad, dilation: dil, groups });
      const xs = [2, 4, 7, 6];
      const xv = randArray(2 * 4 * 7 * 6, 11 + stride + pad);
      tidy(() => {
        const y = conv.forward(tensor(xv, xs));
        const ref = convRef(xv, xs, conv.weight.toNumbers(), conv.weight.shape, conv.bias!.toNumbers(), stride, pad, dil, groups);
        assertTensor(y, ref.shape, ref.out, { atol: 1e-5, rtol: 1e-5 }, `conv s${stride} p${pad} d${dil} g${groups}`);
      });
      conv.dispose();
    }
  });

  test('PyTorch default init: weight and bias in U(-1/sqrt(fan_in), 1/sqrt(fan_in))', () => {
    manualSeed(12);
    const conv = new Conv2d(32, 64, 3, { groups: 2 });
    const bound = 1 / Math.sqrt(16 * 9);
    assert.deepEqual(conv.weight.shape, [64, 16, 3, 3]);
    const w = conv.weight.toNumbers();
    assert.ok(w.every((v) => Math.abs(v) <= bound));
    const { mean, std } = meanStd(w);
    assert.ok(Math.abs(mean) < 0.02 * bound, `mean ${mean}`);
    assert.ok(Math.abs(std - bound / Math.sqrt(3)) < 0.02 * bound, `std ${std} vs ${bound / Math.sqrt(3)}`);
    const b = conv.bias!.toNumbers();
    assert.ok(b.every((v) => Math.abs(v) <= bound) && b.some((v) => Math.abs(v) > bound / 2));
    assert.equal(new Conv2d(3, 4, 1, { bias: false }).bias, null);
    assert.throws(() => new Conv2d(3, 4, 1, { groups: 2 }), /multiples of groups/);
    conv.dispose();
  });
});

describe('Linear', () => {
  test('y = x W^T + b and default init bounds', () => {
    manualSeed(13);
    const lin = new Linear(50, 3);
    const bound = 1 / Math.sqrt(50);
    assert.ok(lin.weight.toNumbers().every((v) => Math.abs(v) <= bound));
    assert.ok(lin.bias!.toNumbers().every((v) => Math.abs(v) <= bound));
    const xv = randArray(2 * 50, 14);
    const w = lin.weight.toNumbers();
    const b = lin.bias!.toNumbers();
    const ref: number[] = [];
    for (let i = 0; i < 2; i++) for (let o = 0; o < 3; o++) {
      let s = b[o]!;
      for (let k = 0; k < 50; k++) s += xv[i * 50 + k]! * w[o * 50 + k]!;
      ref.push(s);
    }
    tidy(() => assertTensor(lin.forward(tensor(xv, [2, 50])), [2, 3], ref, { atol: 1e-5 }));
    lin.dispose();
  });
});

describe('init', () => {
  test('kaimingNormal(fan_out, relu) has std sqrt(2 / fan_out); kaimingUniform(fan_in) bound sqrt(6 / fan_in)', () => {
    manualSeed(15);
    const t = empty([128, 64, 3, 3]);
    const { fanIn, fanOut } = init.fans(t);
    assert.deepEqual([fanIn, fanOut], [576, 1152]);
    init.kaimingNormal(t, { mode: 'fan_out', nonlinearity: 'relu' });
    const n = meanStd(t.toNumbers());
    assert.ok(Math.abs(n.std / Math.sqrt(2 / 1152) - 1) < 0.02, `std ${n.std}`);
    init.kaimingUniform(t, { nonlinearity: 'relu' });
    const u = t.toNumbers();
    const bound = Math.sqrt(6 / 576);
    assert.ok(u.every((v) => Math.abs(v) <= bound) && Math.max(...u.map(Math.abs)) > 0.99 * bound);
    init.ones(t);
    assert.ok(t.toNumbers().every((v) => v === 1));
    init.zeros(t);
    assert.ok(t.toNumbers().every((v) => v === 0));
    init.uniform(t, 2, 3);
    assert.ok(t.toNumbers().every((v) => v >= 2 && v <= 3));
    assert.equal(init.gain('leaky_relu', Math.sqrt(5)), Math.sqrt(1 / 3));
    assert.throws(() => init.fans(empty([3])), /at least 2 dims/);
    t.dispose();
  });

  test('init works on parameters that require grad (it runs under noGrad)', () => {
    const lin = new Linear(4, 4);
    init.zeros(lin.weight);
    assert.ok(lin.weight.toNumbers().every((v) => v === 0));
    assert.ok(lin.weight.isLeaf && lin.weight.requiresGrad);
    lin.dispose();
  });
});

describe('BatchNorm2d', () => {
  // x: [N=3, C=2, 2, 2], per-channel statistics computed by hand below.
  const xv = randArray(3 * 2 * 2 * 2, 20, -2, 3);
  const stats = (c: number) => {
    const vals: number[] = [];
    for (let b = 0; b < 3; b++) for (let k = 0; k < 4; k++) vals.push(xv[(b * 2 + c) * 4 + k]!);
    const mean = vals.reduce((s, v) => s + v, 0) / vals.length;
    const ss = vals.reduce((s, v) => s + (v - mean) ** 2, 0);
    return { mean, biased: ss / vals.length, unbiased: ss / (vals.length - 1) };
  };
  const normalise = (mean: (c: number) => number, variance: (c: number) => number, wt: number[], bs: number[]) =>
    xv.map((v, i) => {
      const c = Math.floor(i / 4) % 2;
      return ((v - mean(c)) / Math.sqrt(variance(c) + 1e-5)) * wt[c]! + bs[c]!;
    });

  test('training mode: batch statistics, running stats with momentum 0.1 and unbiased variance, counter', () => {
    const bn = new BatchNorm2d(2);
    tidy(() => {
      assert.deepEqual(bn.weight!.toNumbers(), [1, 1]);
      assert.deepEqual(bn.bias!.toNumbers(), [0, 0]);
      const y = bn.forward(tensor(xv, [3, 2, 2, 2]));
      assertTensor(y, [3, 2, 2, 2], normalise((c) => stats(c).mean, (c) => stats(c).biased, [1, 1], [0, 0]), { atol: 1e-5 });
    });
    assertClose(bn.runningMean!, [0.1 * stats(0).mean, 0.1 * stats(1).mean], { atol: 1e-6 }, 'running_mean');
    assertClose(bn.runningVar!, [0.9 + 0.1 * stats(0).unbiased, 0.9 + 0.1 * stats(1).unbiased], { atol: 1e-6 }, 'running_var');
    assert.equal(bn.numBatchesTracked!.item(), 1);
    tidy(() => bn.forward(tensor(xv, [3, 2, 2, 2])));
    assert.equal(bn.numBatchesTracked!.item(), 2);
    assertClose(bn.runningMean!, [0.19 * stats(0).mean, 0.19 * stats(1).mean], { atol: 1e-6 });
    bn.dispose();
  });

  test('eval mode uses the running statistics and the affine parameters', () => {
    const bn = new BatchNorm2d(2).eval();
    tidy(() => {
      bn.loadStateDict({
        weight: tensor([2, 0.5]),
        bias: tensor([0.1, -0.2]),
        running_mean: tensor([0.3, -1]),
        running_var: tensor([4, 0.25]),
        num_batches_tracked: tensor([7], [], { dtype: 'int64' }),
      });
      const y = bn.forward(tensor(xv, [3, 2, 2, 2]));
      const ref = normalise((c) => [0.3, -1][c]!, (c) => [4, 0.25][c]!, [2, 0.5], [0.1, -0.2]);
      assertTensor(y, [3, 2, 2, 2], ref, { atol: 1e-5 });
    });
    assert.equal(bn.numBatchesTracked!.item(), 7);
    bn.dispose();
  });

  test('momentum null is a cumulative average; without running stats batch statistics are always used', () => {
    const bn = new BatchNorm2d(2, { momentum: null });
    tidy(() => bn.forward(tensor(xv, [3, 2, 2, 2])));
    assertClose(bn.runningMean!, [stats(0).mean, stats(1).mean], { atol: 1e-6 }, 'first batch replaces');
    const free = new BatchNorm2d(2, { trackRunningStats: false, affine: false }).eval();
    assert.equal(free.namedBuffers().length + free.namedParameters().length, 0);
    tidy(() => {
      const y = free.forward(tensor(xv, [3, 2, 2, 2]));
      assertClose(y, normalise((c) => stats(c).mean, (c) => stats(c).biased, [1, 1], [0, 0]), { atol: 1e-5 });
    });
    assert.throws(() => tidy(() => bn.forward(tensor([1, 2], [2]))), /4-D input/);
    bn.dispose();
  });
});

describe('parameter-free layers and Sequential', () => {
  test('ReLU, MaxPool2d, AdaptiveAvgPool2d, Flatten, Identity', () => {
    tidy(() => {
      const x = tensor([1, -2, 3, 4, -5, 6, 7, 8, -9, 10, 11, 12, 13, -14, 15, 16], [1, 1, 4, 4]);
      assert.deepEqual(new ReLU().forward(x).toNumbers(), [1, 0, 3, 4, 0, 6, 7, 8, 0, 10, 11, 12, 13, 0, 15, 16]);
      assertTensor(new MaxPool2d(2).forward(x), [1, 1, 2, 2], [6, 8, 13, 16]);
      // 3x3 windows, stride 2, padding 1 (the stems of both model families).
      assertTensor(new MaxPool2d(3, { stride: 2, padding: 1 }).forward(x), [1, 1, 2, 2], [6, 8, 13, 16]);
      assertTensor(new AdaptiveAvgPool2d(1).forward(x), [1, 1, 1, 1], [(136 - 2 * 30) / 16]);
      assertTensor(new AdaptiveAvgPool2d([2, 1]).forward(x), [1, 1, 2, 1], [(1 - 2 + 3 + 4 - 5 + 6 + 7 + 8) / 8, (-9 + 10 + 11 + 12 + 13 - 14 + 15 + 16) / 8]);
      assert.deepEqual(new Flatten().forward(x).shape, [1, 16]);
      assert.equal(new Identity().forward(x), x);
    });
  });

  test('Dropout: identity in eval mode; in training it zeroes about p and scales the rest by 1/(1-p)', () => {
    manualSeed(21);
    const d = new Dropout(0.25);
    tidy(() => {
      const x = tensor(new Float32Array(20000).fill(1), [20000]);
      const v = d.forward(x).toNumbers();
      const zeroFrac = v.filter((e) => e === 0).length / v.length;
      assert.ok(Math.abs(zeroFrac - 0.25) < 0.02, `zero fraction ${zeroFrac}`);
      assert.ok(v.every((e) => e === 0 || Math.abs(e - 4 / 3) < 1e-6));
      d.eval();
      assert.equal(d.forward(x), x);
    });
    assert.throws(() => new Dropout(1.5), /p must be in \[0, 1\]/);
  });

  test('Sequential names its children 0, 1, ... and composes them in order', () => {
    manualSeed(22);
    const lin = new Linear(3, 2);
    const s = new Sequential(lin, new ReLU());
    s.append(new Identity());
    assert.equal(s.length, 3);
    assert.deepEqual(s.namedChildren().map(([n]) => n), ['0', '1', '2']);
    assert.equal(s.at(-3), lin);
    assert.deepEqual(s.namedParameters().map(([n]) => n), ['0.weight', '0.bias']);
    tidy(() => {
      const x = tensor([1, -1, 2, 0.5, 3, -2], [2, 3]);
      assertClose(s.forward(x), lin.forward(x).relu().toNumbers(), { atol: 0, rtol: 0 });
      const empty = new Sequential();
      assert.equal(empty.forward(x), x);
    });
    s.dispose();
  });
});

describe('dtypes', () => {
  test('layers accept float64 parameters', () => {
    const conv = new Conv2d(1, 1, 1, { dtype: 'float64' });
    assert.equal(conv.weight.dtype, 'float64');
    const y: Tensor = tidy(() => conv.forward(tensor([1, 2], [1, 1, 1, 2], { dtype: 'float64' })));
    assert.equal(y.dtype, 'float64');
    y.dispose();
    conv.dispose();
  });
});
