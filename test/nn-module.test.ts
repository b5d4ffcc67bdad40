// nn.Module: name checks, recursive walks, train/eval, state dicts, conversions, lifetimes.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, zeros, ones, randn, tidy, noGrad, memory, manualSeed, UserError } from '../src/tensor/index.js';
import { Module, StateDictError, Conv2d, BatchNorm2d, Linear, ReLU, Sequential, Identity } from '../src/nn/index.js';
import { assertClose } from './helpers/assert.js';

/** A module with one parameter, one buffer and a free-form forward. */
class Leaf extends Module {
  constructor(n = 3) {
    super();
    this.registerParameter('w', ones([n]));
    this.registerBuffer('b', zeros([n]));
  }
  get w(): Tensor {
    return this.getParameter('w');
  }
  override forward(x: Tensor): Tensor {
    return x.mul(this.w);
  }
}

/** conv1 = Sequential(conv, bn, relu); head = Linear; as the models lay them out. */
class Net extends Module {
  constructor() {
    super();
    this.registerModule('conv1', new Sequential(new Conv2d(2, 4, 3, { padding: 1, bias: false }), new BatchNorm2d(4), new ReLU()));
    this.registerModule('fc', new Linear(4, 3));
  }
  override forward(x: Tensor): Tensor {
    return tidy(() => this.getModule('fc').forward(this.getModule('conv1').forward(x).mean([2, 3])));
  }
}

describe('registration name checks', () => {
  test('empty names, dots and non-strings are refused', () => {
    const m = new Leaf();
    assert.throws(() => m.registerParameter('', ones([1])), (e: Error) => e instanceof UserError && /non-empty/.test(e.message));
    assert.throws(() => m.registerBuffer('a.b', ones([1])), (e: Error) => e instanceof UserError && /must not contain "\."/.test(e.message));
    assert.throws(() => m.registerModule('x.y', new ReLU()), UserError);
    assert.throws(() => m.registerParameter(3 as unknown as string, ones([1])), UserError);
  });

  test('a name registered as one kind cannot be registered as another', () => {
    const m = new Leaf();
    assert.throws(() => m.registerBuffer('w', ones([1])), /cannot register buffer "w": a parameter of that name already exists/);
    assert.throws(() => m.registerModule('b', new ReLU()), /cannot register module "b": a buffer of that name already exists/);
    m.registerModule('c', new ReLU());
    assert.throws(() => m.registerParameter('c', ones([1])), /a module of that name already exists/);
  });

  test('names of Module members and own fields clash; subclass getters do not', () => {
    const m = new Leaf();
    for (const name of ['forward', 'parameters', 'training', 'stateDict', 'constructor']) {
      assert.throws(() => m.registerModule(name, new ReLU()), /clashes with an attribute/, name);
    }
    class WithField extends Module {
      readonly size = 4;
      override forward(x: Tensor): Tensor {
        return x;
      }
    }
    assert.throws(() => new WithField().registerParameter('size', ones([1])), /clashes/);
    // Leaf defines a getter `w` that reads the registered parameter back: re-registering replaces it.
    const t = m.registerParameter('w', randn([3]));
    assert.equal(m.w, t);
  });

  test('re-registering the same kind replaces the entry', () => {
    const s = new Sequential(new ReLU());
    const id = new Identity();
    s.registerModule('0', id);
    assert.equal(s.at(0), id);
    assert.equal(s.children().length, 1);
  });

  test('parameters must be leaves and become requiresGrad leaves owned by the module', () => {
    const m = new Leaf();
    const a = ones([2], { requiresGrad: true });
    const nonLeaf = a.mul(2);
    assert.throws(() => m.registerParameter('p', nonLeaf), /must be a leaf/);
    const frozen = m.registerParameter('f', zeros([2]), { requiresGrad: false });
    assert.equal(frozen.requiresGrad, false);
    assert.equal(m.w.requiresGrad, true);
    assert.equal(m.w.isLeaf, true);
    a.dispose();
    nonLeaf.dispose();
  });

  test('parameters and buffers created inside tidy survive the scope', () => {
    const m = tidy(() => new Net());
    for (const t of [...m.parameters(), ...m.buffers()]) assert.equal(t.isDisposed, false);
    const y = tidy(() => m.forward(randn([1, 2, 5, 5])));
    assert.deepEqual(y.shape, [1, 3]);
    y.dispose();
    m.dispose();
  });
});

describe('recursive walks', () => {
  test('namedParameters, namedBuffers and namedModules use dotted torchvision names', () => {
    const m = new Net();
    assert.deepEqual(
      m.namedParameters().map(([n]) => n),
      ['conv1.0.weight', 'conv1.1.weight', 'conv1.1.bias', 'fc.weight', 'fc.bias'],
    );
    assert.deepEqual(
      m.namedBuffers().map(([n]) => n),
      ['conv1.1.running_mean', 'conv1.1.running_var', 'conv1.1.num_batches_tracked'],
    );
    assert.deepEqual(
      m.namedModules().map(([n]) => n),
      ['', 'conv1', 'conv1.0', 'conv1.1', 'conv1.2', 'fc'],
    );
    assert.deepEqual(m.namedChildren().map(([n]) => n), ['conv1', 'fc']);
    assert.deepEqual(m.namedParameters({ recurse: false }), []);
    assert.deepEqual(m.namedParameters({ prefix: 'model' })[0]![0], 'model.conv1.0.weight');
    assert.equal(m.numParameters(), 2 * 4 * 9 + 4 + 4 + 4 * 3 + 3);
    m.dispose();
  });

  test('a shared parameter or module appears once in the walks but under every name in the state dict', () => {
    const shared = new Leaf(2);
    class Twice extends Module {
      constructor() {
        super();
        this.registerModule('a', shared);
        this.registerModule('b', shared);
        this.registerParameter('tied', shared.w);
      }
      override forward(x: Tensor): Tensor {
        return x;
      }
    }
    const m = new Twice();
    assert.deepEqual(m.namedParameters().map(([n]) => n), ['tied']);
    assert.deepEqual(m.namedModules().map(([n]) => n), ['', 'a']);
    assert.equal(m.children().length, 1);
    assert.equal(m.numParameters(), 2);
    tidy(() => assert.deepEqual([...m.stateDict().keys()], ['tied', 'a.w', 'a.b', 'b.w', 'b.b']));
    m.dispose();
  });

  test('getSubmodule and setSubmodule follow dotted paths', () => {
    const m = new Net();
    assert.ok(m.getSubmodule('conv1.0') instanceof Conv2d);
    assert.equal(m.getSubmodule(''), m);
    assert.throws(() => m.getSubmodule('conv1.7'), /no submodule "conv1\.7"/);
    const replacement = new Conv2d(2, 4, 3, { padding: 1, bias: false });
    m.setSubmodule('conv1.0', replacement);
    assert.equal(m.getSubmodule('conv1.0'), replacement);
    assert.throws(() => m.setSubmodule('conv1.9', new ReLU()), /to replace/);
    m.dispose();
  });
});

describe('train / eval', () => {
  test('train(mode) and eval() recurse and return the module', () => {
    const m = new Net();
    assert.ok(m.modules().every((x) => x.training));
    assert.equal(m.eval(), m);
    assert.ok(m.modules().every((x) => !x.training));
    m.getSubmodule('conv1').train();
    assert.deepEqual(m.modules().map((x) => x.training), [false, true, true, true, true, false]);
    assert.throws(() => m.train('yes' as unknown as boolean), /mode must be a boolean/);
    m.dispose();
  });

  test('BatchNorm follows the flag: train updates running stats, eval leaves them', () => {
    manualSeed(1);
    const m = new Net();
    const bn = m.getSubmodule<BatchNorm2d>('conv1.1');
    const x = randn([4, 2, 5, 5]);
    m.eval();
    tidy(() => m.forward(x));
    assert.equal(bn.numBatchesTracked!.item(), 0);
    assert.deepEqual(bn.runningMean!.toNumbers(), [0, 0, 0, 0]);
    m.train();
    tidy(() => m.forward(x));
    assert.equal(bn.numBatchesTracked!.item(), 1);
    assert.ok(bn.runningMean!.toNumbers().some((v) => v !== 0));
    x.dispose();
    m.dispose();
  });
});

describe('state dict', () => {
  test('stateDict lists parameters then buffers per module, with int64 num_batches_tracked', () => {
    const m = new Net();
    tidy(() => {
      const sd = m.stateDict();
      assert.deepEqual(
        [...sd.keys()],
        [
          'conv1.0.weight',
          'conv1.1.weight',
          'conv1.1.bias',
          'conv1.1.running_mean',
          'conv1.1.running_var',
          'conv1.1.num_batches_tracked',
          'fc.weight',
          'fc.bias',
        ],
      );
      assert.equal(sd.get('conv1.1.num_batches_tracked')!.dtype, 'int64');
      assert.deepEqual(sd.get('conv1.1.num_batches_tracked')!.shape, []);
      const w = sd.get('fc.weight')!;
      assert.equal(w.requiresGrad, false, 'state dict values are detached');
      assert.notEqual(w, m.getSubmodule<Linear>('fc').weight);
    });
    // Disposing the state dict's handles leaves the model's tensors alive.
    assert.equal(m.getSubmodule<Linear>('fc').weight.isDisposed, false);
    m.dispose();
  });

  test('non-persistent buffers stay out of the state dict', () => {
    const m = new Leaf();
    m.registerBuffer('scratch', zeros([1]), { persistent: false });
    tidy(() => assert.deepEqual([...m.stateDict().keys()], ['w', 'b']));
    assert.deepEqual(m.namedBuffers().map(([n]) => n), ['b', 'scratch']);
    m.dispose();
  });

  test('loadStateDict copies values into another model: same outputs, parameters stay leaves', () => {
    manualSeed(2);
    const a = new Net().eval();
    const b = new Net().eval();
    const x = randn([2, 2, 4, 4]);
    tidy(() => {
      // Give a non-default running stats so that buffers matter.
      noGrad(() => a.getSubmodule<BatchNorm2d>('conv1.1').runningVar!.fill_(2.5));
      const before = b.parameters();
      const res = b.loadStateDict(a.stateDict());
      assert.deepEqual(res, { missing: [], unexpected: [] });
      assert.deepEqual(b.parameters(), before, 'the same parameter tensors, updated in place');
      assert.ok(b.parameters().every((p) => p.isLeaf && p.requiresGrad));
      assertClose(b.forward(x), a.forward(x).toNumbers(), { atol: 0, rtol: 0 }, 'logits');
      assert.deepEqual(b.getSubmodule<BatchNorm2d>('conv1.1').runningVar!.toNumbers(), [2.5, 2.5, 2.5, 2.5]);
    });
    x.dispose();
    a.dispose();
    b.dispose();
  });

  test('strict loading reports every missing key, unexpected key and shape mismatch in one error, and copies nothing', () => {
    const m = new Net();
    const fcBefore = m.getSubmodule<Linear>('fc').weight.toNumbers();
    tidy(() => {
      const sd = m.stateDict();
      sd.delete('conv1.1.running_var');
      sd.delete('fc.bias');
      sd.set('conv1.3.weight', ones([2]));
      sd.set('fc.weight', zeros([5, 4]));
      sd.set('conv1.0.weight', zeros([4, 1, 3, 3]));
      sd.set('conv1.1.weight', zeros([4])); // right shape: would be copied if loading went ahead
      let err: StateDictError | undefined;
      assert.throws(
        () => m.loadStateDict(sd),
        (e: Error) => {
          err = e as StateDictError;
          return e instanceof StateDictError && e instanceof UserError;
        },
      );
      assert.deepEqual(err!.missing, ['conv1.1.running_var', 'fc.bias']);
      assert.deepEqual(err!.unexpected, ['conv1.3.weight']);
      assert.deepEqual(err!.mismatched, [
        { key: 'conv1.0.weight', expected: [4, 2, 3, 3], got: [4, 1, 3, 3] },
        { key: 'fc.weight', expected: [3, 4], got: [5, 4] },
      ]);
      assert.ok(!err!.message.includes('\n'), 'one line');
      for (const k of ['conv1.1.running_var', 'fc.bias', 'conv1.3.weight', 'conv1.0.weight', 'fc.weight', 'Net']) {
        assert.ok(err!.message.includes(k), `message names ${k}: ${err!.message}`);
      }
      assert.match(err!.message, /2 missing keys.*1 unexpected key.*2 shape mismatches/);
    });
    assert.deepEqual(m.getSubmodule<Linear>('fc').weight.toNumbers(), fcBefore);
    assert.deepEqual(m.getSubmodule<BatchNorm2d>('conv1.1').weight!.toNumbers(), [1, 1, 1, 1]);
    m.dispose();
  });

  test('non-strict loading returns missing and unexpected keys, copies the rest, still refuses shape mismatches', () => {
    const m = new Net();
    const r = tidy(() =>
      m.loadStateDict({ 'fc.bias': tensor([7, 8, 9]), 'extra.weight': ones([1]) }, { strict: false }),
    );
    assert.deepEqual(r.unexpected, ['extra.weight']);
    assert.equal(r.missing.length, 7);
    assert.ok(!r.missing.includes('fc.bias'));
    assert.deepEqual(m.getSubmodule<Linear>('fc').bias!.toNumbers(), [7, 8, 9]);
    assert.throws(
      () => tidy(() => m.loadStateDict({ 'fc.bias': ones([4]) }, { strict: false })),
      (e: Error) => e instanceof StateDictError && e.missing.length === 0 && e.mismatched.length === 1 && /fc\.bias/.test(e.message),
    );
    m.dispose();
  });

  test('loading converts dtype (float64 checkpoint into float32 model, int into num_batches_tracked)', () => {
    const m = new Leaf(2);
    tidy(() => m.loadStateDict({ w: tensor([0.5, 1.5], [2], { dtype: 'float64' }), b: tensor([3, 4], [2], { dtype: 'int64' }) }));
    assert.equal(m.w.dtype, 'float32');
    assert.deepEqual(m.w.toNumbers(), [0.5, 1.5]);
    assert.deepEqual(m.getBuffer('b').toNumbers(), [3, 4]);
    m.dispose();
  });
});

describe('gradients, conversions, lifetime', () => {
  test('zeroGrad drops every gradient', () => {
    const m = new Net();
    tidy(() => m.forward(randn([2, 2, 4, 4])).sum().backward());
    assert.ok(m.parameters().every((p) => tidy(() => p.grad !== null)));
    m.zeroGrad();
    assert.ok(m.parameters().every((p) => p.grad === null));
    m.dispose();
  });

  test('toChannelsLast: conv weights become channels_last leaves, outputs and gradients unchanged', () => {
    manualSeed(3);
    const m = new Net();
    const x = randn([2, 2, 6, 6]);
    const ref = tidy(() => {
      const y = m.forward(x);
      y.sum().backward();
      return { y, g: m.getSubmodule<Conv2d>('conv1.0').weight.grad! };
    });
    m.zeroGrad();
    const before = m.parameters();
    m.toChannelsLast();
    const w = m.getSubmodule<Conv2d>('conv1.0').weight;
    assert.ok(w.isContiguous('channels_last') && !w.isContiguous());
    assert.ok(w.isLeaf && w.requiresGrad);
    assert.ok(before[0]!.isDisposed, 'the old NCHW weight is freed');
    assert.equal(m.parameters()[1], before[1], '1-D parameters are untouched');
    tidy(() => {
      const xc = x.contiguous('channels_last');
      const y = m.forward(xc);
      y.sum().backward();
      assertClose(y, ref.y.toNumbers(), { atol: 1e-5 }, 'channels_last logits');
      assertClose(w.grad!, ref.g.toNumbers(), { atol: 1e-5 }, 'channels_last conv grad');
    });
    ref.y.dispose();
    ref.g.dispose();
    x.dispose();
    m.dispose();
  });

  test('toChannelsLast restrides weights contiguous in both layouts (1x1, depthwise), so ATen reads them as channels_last; values unchanged', () => {
    manualSeed(4);
    const m = new Sequential(
      new Conv2d(8, 16, 1, { bias: false }),
      new Conv2d(16, 16, 3, { padding: 1, groups: 16, bias: false }),
    );
    const before = m.parameters().map((p) => p.toNumbers());
    // Fresh NCHW weights: contiguous in both layouts, strides read as NCHW.
    for (const p of m.parameters()) assert.ok(p.isContiguous('channels_last') && p.suggestMemoryFormat() === 'contiguous');
    m.toChannelsLast();
    for (const [i, p] of m.parameters().entries()) {
      assert.equal(p.suggestMemoryFormat(), 'channels_last', `weight ${i}`);
      assert.deepEqual(p.toNumbers(), before[i], `weight ${i} values`);
      assert.ok(p.isLeaf && p.requiresGrad);
    }
    // A 1x1 map: the input is ambiguous too; clone('channels_last') strides it as channels_last.
    tidy(() => {
      const x = randn([4, 8, 1, 1]);
      assert.equal(x.suggestMemoryFormat(), 'contiguous');
      assert.equal(x.clone('channels_last').suggestMemoryFormat(), 'channels_last');
      assert.deepEqual(x.clone('channels_last').toNumbers(), x.toNumbers());
    });
    m.dispose();
  });

  test('toDtype converts floating parameters and buffers but not num_batches_tracked', () => {
    const m = new Net().toDtype('float64');
    for (const [n, t] of [...m.namedParameters(), ...m.namedBuffers()]) {
      assert.equal(t.dtype, n.endsWith('num_batches_tracked') ? 'int64' : 'float64', n);
    }
    assert.ok(m.parameters().every((p) => p.isLeaf && p.requiresGrad));
    const y = tidy(() => m.forward(randn([1, 2, 3, 3], { dtype: 'float64' })));
    assert.equal(y.dtype, 'float64');
    y.dispose();
    m.dispose();
  });

  test('subclasses may give forward more arguments', () => {
    class Scaled extends Module {
      override forward(x: Tensor, scale = 1, offset?: Tensor): Tensor {
        const y = x.mul(scale);
        return offset ? y.add(offset) : y;
      }
    }
    const m: Module = new Scaled();
    tidy(() => assert.deepEqual(m.forward(tensor([1, 2]), 3, tensor([1, 1])).toNumbers(), [4, 7]));
  });

  test('to("cpu") on a CPU model keeps the tensors', () => {
    const m = new Leaf();
    const w = m.w;
    m.to('cpu');
    assert.equal(m.w, w);
    m.dispose();
  });

  test('forward passes inside tidy and dispose() leave no live tensors behind', () => {
    const start = memory().liveTensors;
    const m = new Net();
    const x = randn([2, 2, 4, 4]);
    const mid = memory().liveTensors;
    for (let i = 0; i < 5; i++) tidy(() => m.forward(x).sum().backward());
    m.zeroGrad();
    assert.equal(memory().liveTensors, mid);
    x.dispose();
    m.dispose();
    assert.equal(memory().liveTensors, start);
  });
});
