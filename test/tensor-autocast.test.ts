// Mixed precision: autocast(device, precision, fn) on the CPU in bf16 (libtorch's CPU autocast),
// checked against the same computation in float32; the state it leaves behind; no leaks.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type Tensor, autocast, autocastState, parsePrecision, checkPrecision, conv2d, linear, randn, manualSeed, tidy, noGrad, memory, crossEntropy, tensor, cat, UserError,
} from '../src/tensor/index.js';
import { createModel } from '../src/models/index.js';
import { DecompositionModel } from '../src/lorkd/decomposition.js';
import { Routing } from '../src/lorkd/routing.js';
import { randomizeDecomposition } from './helpers/random-decomposition.js';

/** ||a - b|| / ||b|| over all elements, in float64. */
function relErr(a: Tensor, b: Tensor): number {
  const x = a.to('float64').toArray() as Float64Array;
  const y = b.to('float64').toArray() as Float64Array;
  let num = 0;
  let den = 0;
  for (let i = 0; i < x.length; i++) {
    num += (x[i]! - y[i]!) ** 2;
    den += y[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

// bf16 keeps 8 significant bits (relative rounding 2^-9 = 0.2%); sums accumulate in float32.
// One op's output is within ~1% of float32 (an EKS layer stack: ~0.7%, its expert gradients
// ~2%). A network's error depends on how much it amplifies rounding: PyTorch 1.13's own CPU bf16 autocast gives 0.1-0.15% for ShuffleNetV2 x0.5 and
// 5-10% for a randomly initialised ResNet-18 in eval mode on these inputs (seeds 3..5).
const OP_TOL = 2e-2;
const NET_TOL: Record<string, number> = { shufflenet_v2_x0_5: 1e-2, resnet18: 0.15 };

describe('precision values', () => {
  test('parsePrecision: fp32 by default, the three names, one-line error otherwise', () => {
    assert.equal(parsePrecision(undefined), 'fp32');
    assert.equal(parsePrecision(' BF16 '), 'bf16');
    assert.equal(parsePrecision('fp16'), 'fp16');
    assert.throws(() => parsePrecision('half'), (e: Error) => e instanceof UserError && /fp32, bf16, fp16/.test(e.message));
  });
  test('fp16 on the CPU is refused in one line (libtorch CPU autocast runs bf16 only)', () => {
    assert.throws(() => checkPrecision('cpu', 'fp16'), (e: Error) => e instanceof UserError && !e.message.includes('\n'));
    assert.throws(() => autocast('cpu', 'fp16', () => 1), UserError);
    assert.equal(autocastState('cpu').enabled, false);
    checkPrecision('cpu', 'bf16');
    checkPrecision('cuda', 'fp16');
  });
});

describe('autocast on the CPU, bf16', () => {
  test('conv2d and linear run in bf16 inside, float32 outside, within bf16 tolerance of float32', () => {
    manualSeed(1);
    tidy(() => {
      const x = randn([2, 8, 12, 12]);
      const w = randn([6, 8, 3, 3]);
      const ref = conv2d(x, w, null, { padding: [1, 1] });
      const y = autocast('cpu', 'bf16', () => conv2d(x, w, null, { padding: [1, 1] }));
      assert.equal(y.dtype, 'bfloat16');
      assert.equal(ref.dtype, 'float32');
      assert.ok(relErr(y, ref) < OP_TOL, `conv2d rel err ${relErr(y, ref)}`);
      const a = randn([5, 32]);
      const lw = randn([7, 32]);
      const lb = randn([7]);
      const l = autocast('cpu', 'bf16', () => linear(a, lw, lb));
      assert.equal(l.dtype, 'bfloat16');
      assert.ok(relErr(l, linear(a, lw, lb)) < OP_TOL);
      // after the call the same op is float32 again
      assert.equal(conv2d(x, w).dtype, 'float32');
    });
  });

  test('fp32 is fn() unchanged and does not touch the state', () => {
    const y = tidy(() => autocast('cpu', 'fp32', () => conv2d(randn([1, 2, 4, 4]), randn([1, 2, 1, 1]))));
    assert.equal(y.dtype, 'float32');
    y.dispose();
    assert.equal(autocastState('cpu').enabled, false);
  });

  test('the state is restored when fn throws, and nested calls restore the outer state', () => {
    assert.equal(autocastState('cpu').enabled, false);
    assert.throws(() => autocast('cpu', 'bf16', () => {
      assert.equal(autocastState('cpu').enabled, true);
      throw new Error('boom');
    }), /boom/);
    assert.equal(autocastState('cpu').enabled, false);
    autocast('cpu', 'bf16', () => {
      assert.throws(() => autocast('cpu', 'bf16', () => { throw new Error('inner'); }), /inner/);
      assert.equal(autocastState('cpu').enabled, true, 'the inner call left the outer autocast on');
      assert.equal(autocastState('cpu').dtype, 'bfloat16');
    });
    assert.equal(autocastState('cpu').enabled, false);
  });

  for (const name of ['shufflenet_v2_x0_5', 'resnet18']) {
    test(`${name}: forward under autocast matches float32 (eval mode)`, () => {
      manualSeed(3);
      const m = createModel(name, { numClasses: 6 }).eval();
      tidy(() => {
        const x = randn([2, 3, 32, 32]);
        const ref = noGrad(() => m.forward(x));
        const y = noGrad(() => autocast('cpu', 'bf16', () => m.forward(x)));
        assert.equal(y.dtype, 'bfloat16');
        assert.ok(relErr(y, ref) < NET_TOL[name]!, `${name} rel err ${relErr(y, ref)}`);
      });
      m.dispose();
    });
  }

  test('ShuffleNetV2 backward under autocast: float32 gradients close to the float32 run', () => {
    manualSeed(4);
    const m = createModel('shufflenet_v2_x0_5', { numClasses: 4 }).eval();
    const x = randn([2, 3, 32, 32]);
    const y = tensor([1, 3], [2], { dtype: 'int64' });
    const grads = (amp: boolean): Tensor[] => {
      m.zeroGrad();
      tidy(() => {
        const loss = amp ? autocast('cpu', 'bf16', () => crossEntropy(m.forward(x), y)) : crossEntropy(m.forward(x), y);
        loss.backward();
      });
      return m.parameters().map((p) => p.grad!);
    };
    const ref = grads(false);
    const got = grads(true);
    assert.ok(got.every((g) => g.dtype === 'float32'), 'parameters keep float32 gradients');
    const e = tidy(() => relErr(cat(got.map((g) => g.reshape([-1]))), cat(ref.map((g) => g.reshape([-1])))));
    assert.ok(e < 0.1, `gradient rel err ${e}`);
    [...ref, ...got, x, y].forEach((t) => t.dispose());
    m.dispose();
  });

  test('decomposition model (fused EKS) forward and backward under autocast match float32', () => {
    manualSeed(5);
    const dm = randomizeDecomposition(new DecompositionModel({ model: 'shufflenet_v2_x0_5', tasks: [{ name: 'a', classNames: ['x', 'y'] }, { name: 'b', classNames: ['x', 'y', 'z'] }], rank: 2, strategy: 'fused' })).eval();
    const routing = new Routing([2, 1]);
    const x = randn([3, 3, 32, 32]).contiguous('channels_last');
    const run = (amp: boolean): { f: Tensor; gA: Tensor; gB: Tensor } => {
      dm.zeroGrad();
      const f = tidy(() => {
        const out = amp ? autocast('cpu', 'bf16', () => dm.featuresSorted(x, routing, 'fused')) : dm.featuresSorted(x, routing, 'fused');
        out.float().sum().backward();
        return out.float();
      });
      const c = dm.expertConvs()[3]![1];
      return { f, gA: c.factors(0).a.grad!, gB: c.factors(0).b.grad! };
    };
    const ref = run(false);
    const got = run(true);
    assert.ok(relErr(got.f, ref.f) < NET_TOL.shufflenet_v2_x0_5!, `features rel err ${relErr(got.f, ref.f)}`);
    assert.equal(got.gA.dtype, 'float32');
    assert.ok(relErr(got.gA, ref.gA) < 0.06, `dA rel err ${relErr(got.gA, ref.gA)}`);
    assert.ok(relErr(got.gB, ref.gB) < 0.06, `dB rel err ${relErr(got.gB, ref.gB)}`);
    [ref.f, ref.gA, ref.gB, got.f, got.gA, got.gB, x].forEach((t) => t.dispose());
    routing.dispose();
    dm.dispose();
  });

  test('no tensor leaks over repeated autocast training steps', () => {
    manualSeed(6);
    const m = createModel('shufflenet_v2_x0_5', { numClasses: 3 });
    const x = randn([2, 3, 16, 16]);
    const y = tensor([0, 2], [2], { dtype: 'int64' });
    const step = () => tidy(() => {
      m.zeroGrad();
      autocast('cpu', 'bf16', () => crossEntropy(m.forward(x), y)).backward();
    });
    step();
    const before = memory();
    for (let i = 0; i < 5; i++) step();
    const after = memory();
    assert.equal(after.liveTensors, before.liveTensors);
    assert.equal(after.externalBytes, before.externalBytes);
    [x, y].forEach((t) => t.dispose());
    m.dispose();
  });
});
