// Generic model tests over listModels() (timm's test_models): forward, gradients, parameter
// counts, structure, registry errors. Comparisons with torchvision are in models-parity.test.ts.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, arange, randn, randint, tidy, memory, manualSeed, UserError, crossEntropy } from '../src/tensor/index.js';
import { createModel, listModels, ShuffleNetV2, ResNet, channelShuffle } from '../src/models/index.js';
import { Conv2d, BatchNorm2d } from '../src/nn/index.js';
import { assertClose } from './helpers/assert.js';

const BACKWARD = ['shufflenet_v2_x0_5', 'shufflenet_v2_x1_0', 'resnet18'];
// The BN after ShuffleNetV2's depthwise convs is followed by a 1x1 conv and another BN without a
// nonlinearity in between: in training mode that BN cancels a per-channel shift, so the first
// BN's bias gets an exactly zero gradient (in torchvision as well).
const ZERO_GRAD = /^stage\d\.\d+\.branch(1\.1|2\.4)\.bias$/;

test('the registry lists torchvision names and rejects unknown ones with the list', () => {
  assert.deepEqual(listModels(), [
    'resnet18', 'resnet34', 'resnet50',
    'shufflenet_v2_x0_5', 'shufflenet_v2_x1_0', 'shufflenet_v2_x1_5', 'shufflenet_v2_x2_0',
    'vit_b_16', 'vit_tiny_p8',
  ]);
  assert.throws(
    () => createModel('shufflenet_v3'),
    (e: Error) => e instanceof UserError && /unknown model "shufflenet_v3"/.test(e.message) && e.message.includes('resnet50, shufflenet_v2_x0_5'),
  );
  assert.throws(() => createModel('resnet18', { numClasses: 0 }), /numClasses must be a positive integer/);
});

describe('forward at 32x32, batch 2', () => {
  for (const name of listModels()) {
    test(name, () => {
      manualSeed(1);
      const m = createModel(name, { numClasses: 5 });
      const live = memory().liveTensors;
      tidy(() => {
        const x = randn([2, 3, 32, 32]);
        const f = m.forwardFeatures(x);
        assert.deepEqual(f.shape, [2, m.numFeatures]);
        const y = m.forwardHead(f);
        assert.deepEqual(y.shape, [2, 5]);
        assert.ok(y.isfinite().all().item(), 'finite logits');
        assertClose(m.forward(x), y.toNumbers(), { atol: 1e-4 }, 'forward = head(features)');
      });
      assert.equal(memory().liveTensors, live, 'forward inside tidy leaves nothing behind');
      m.dispose();
    });
  }
});

describe('backward gives every parameter a gradient', () => {
  for (const name of BACKWARD) {
    test(name, () => {
      manualSeed(2);
      const m = createModel(name, { numClasses: 4 });
      tidy(() => {
        const loss = crossEntropy(m.forward(randn([2, 3, 32, 32])), randint(0, 4, [2]));
        loss.backward();
        for (const [n, p] of m.namedParameters()) {
          const g = p.grad;
          assert.ok(g, `${n} has no gradient`);
          assert.deepEqual(g.shape, p.shape, n);
          assert.ok(g.isfinite().all().item(), `${n}: finite gradient`);
          if (!ZERO_GRAD.test(n)) assert.ok(g.abs().sum().item() > 0, `${n}: non-zero gradient`);
        }
      });
      m.dispose();
    });
  }
});

describe('structure', () => {
  test('parameter counts equal torchvision (1000 classes)', () => {
    for (const [name, count] of [['shufflenet_v2_x1_0', 2_278_604], ['resnet18', 11_689_512], ['resnet50', 25_557_032]] as const) {
      const m = createModel(name);
      assert.equal(m.numParameters(), count, name);
      m.dispose();
    }
  });

  test('inChannels changes only the stem; numClasses only the head; resetClassifier swaps the head', () => {
    const s = new ShuffleNetV2('x0_5', { inChannels: 1, numClasses: 3 });
    assert.deepEqual(s.getSubmodule<Conv2d>('conv1.0').weight.shape, [24, 1, 3, 3]);
    const r = createModel('resnet18', { inChannels: 2, numClasses: 6 }) as ResNet;
    assert.deepEqual(r.getSubmodule<Conv2d>('conv1').weight.shape, [64, 2, 7, 7]);
    assert.equal(r.numClasses, 6);
    tidy(() => assert.deepEqual(s.forward(randn([2, 1, 32, 32])).shape, [2, 3]));
    const oldFc = s.fc;
    s.resetClassifier(9);
    assert.ok(oldFc.weight.isDisposed);
    assert.equal(s.numClasses, 9);
    tidy(() => assert.deepEqual(s.forward(randn([2, 1, 32, 32])).shape, [2, 9]));
    s.dispose();
    r.dispose();
  });

  test("ResNet's init: conv weights kaiming normal (fan_out, relu), BN weight 1 and bias 0", () => {
    manualSeed(3);
    const r = new ResNet('resnet18');
    const w = r.getSubmodule<Conv2d>('layer3.0.conv2').weight.toNumbers(); // [256, 256, 3, 3]
    const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
    assert.ok(Math.abs(std / Math.sqrt(2 / (256 * 9)) - 1) < 0.02, `std ${std}`);
    const bn = r.getSubmodule<BatchNorm2d>('layer3.0.bn2');
    assert.ok(bn.weight!.toNumbers().every((v) => v === 1) && bn.bias!.toNumbers().every((v) => v === 0));
    r.dispose();
  });

  test('channelShuffle interleaves the two halves', () => {
    tidy(() => {
      const x = arange(0, 6, 1, { dtype: 'float32' }).view([1, 6, 1, 1]);
      assert.deepEqual(channelShuffle(x, 2).toNumbers(), [0, 3, 1, 4, 2, 5]);
      assert.deepEqual(channelShuffle(x, 3).toNumbers(), [0, 2, 4, 1, 3, 5]);
      assert.deepEqual(channelShuffle(tensor([1, 2], [1, 2, 1, 1]), 1).toNumbers(), [1, 2]);
      // A channels_last input gives the same values and stays channels_last.
      const y = randn([2, 6, 3, 5]);
      const ref = channelShuffle(y, 2);
      const cl = channelShuffle(y.contiguous('channels_last'), 2);
      assert.ok(cl.isContiguous('channels_last'));
      assert.deepEqual(cl.contiguous().toNumbers(), ref.toNumbers());
      assert.deepEqual(ref.select(1, 1).toNumbers(), y.select(1, 3).toNumbers());
    });
  });

  test('channels_last: toChannelsLast on a model gives the NCHW logits for a channels_last input', () => {
    manualSeed(4);
    const m = createModel('shufflenet_v2_x0_5', { numClasses: 3 }).eval();
    const x = randn([2, 3, 32, 32]);
    const ref = tidy(() => m.forward(x));
    m.toChannelsLast();
    assert.ok(m.getSubmodule<Conv2d>('stage2.0.branch1.0').weight.isContiguous('channels_last'));
    tidy(() => assertClose(m.forward(x.contiguous('channels_last')), ref.toNumbers(), { atol: 1e-4 }, 'logits'));
    ref.dispose();
    x.dispose();
    m.dispose();
  });
});
