// layerChain (src/nn/sequential.ts): in inference mode a Sequential frees each intermediate result
// once the next layer has made its own; never the input, a result passed through unchanged, or
// anything while a forward hook exists; outside inference mode (no-grad, training) nothing. In
// every mode a ReLU overwrites a fresh BatchNorm2d or Conv2d output, with the same values and
// gradients as out of place.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn, noGrad, tidy, inferenceMode, manualSeed, type Tensor } from '../src/tensor/index.js';
import { Module } from '../src/nn/module.js';
import { Identity, ReLU } from '../src/nn/basic.js';
import { BatchNorm2d } from '../src/nn/batchnorm.js';
import { Conv2d } from '../src/nn/conv.js';
import { Sequential } from '../src/nn/sequential.js';

/** Adds 1 and remembers every input it saw. */
class Recorder extends Module {
  readonly seen: Tensor[] = [];
  override forward(x: Tensor): Tensor {
    this.seen.push(x);
    return x.add(1);
  }
}

function chain() {
  const layers = [new Recorder(), new Recorder(), new Identity(), new Recorder()];
  return { seq: new Sequential(...layers), r: layers.filter((l): l is Recorder => l instanceof Recorder) };
}

test('inference mode: intermediates are freed at once; the input, the output and a passed-through result stay', () => {
  tidy(() => {
    const x = randn([2, 3]);
    const { seq, r } = chain();
    const y = inferenceMode(() => seq.forward(x));
    assert.equal(x.isDisposed, false, 'the input is the caller\'s');
    assert.equal(y.isDisposed, false);
    assert.equal(r[1]!.seen[0]!.isDisposed, true, 'first layer\'s output, freed after the second ran');
    assert.equal(r[2]!.seen[0]!.isDisposed, true, 'second layer\'s output, passed through Identity, freed once the last layer ran');
    assert.ok(Math.abs(y.sum().item() - (x.sum().item() + 3 * 6)) < 1e-4, 'the same function');
  });
});

test('no-grad, or a forward hook anywhere: nothing is freed', () => {
  tidy(() => {
    const x = randn([2, 3]);
    const a = chain();
    noGrad(() => a.seq.forward(x));
    assert.ok(a.r.flatMap((l) => l.seen).every((t) => !t.isDisposed), 'no-grad keeps every intermediate');
    const b = chain();
    const other = new Identity();
    const h = other.registerForwardHook(() => {});
    inferenceMode(() => b.seq.forward(x));
    assert.ok(b.r.flatMap((l) => l.seen).every((t) => !t.isDisposed), 'a hook on any module keeps every intermediate');
    h.remove();
    const c = chain();
    inferenceMode(() => c.seq.forward(x));
    assert.equal(c.r[1]!.seen[0]!.isDisposed, true, 'freed again once the hook is removed');
  });
});

// A BatchNorm2d subclass that keeps its output (as a feature extractor might): not fresh.
class KeepingBN extends BatchNorm2d {
  kept: Tensor | null = null;
  override forward(x: Tensor): Tensor {
    this.kept = super.forward(x);
    return this.kept;
  }
}

test('ReLU after a fresh BatchNorm2d or Conv2d output runs in place; values and gradients as out of place', () => {
  tidy(() => {
    manualSeed(1);
    const make = () => new Sequential(new Conv2d(3, 4, 3, { padding: 1 }), new ReLU(), new BatchNorm2d(4), new ReLU(), new ReLU());
    const a = make();
    const b = make();
    b.loadStateDict(a.stateDict());
    const x = randn([2, 3, 5, 5]);
    const w = randn([2, 4, 5, 5]);
    // b runs layer by layer, out of place: the reference.
    const ref = [...b].reduce((y, l) => l.forward(y), x);
    ref.mul(w).sum().backward();
    let fresh = 0;
    const relus = [...a].filter((l) => l instanceof ReLU);
    const seen: Tensor[] = [];
    for (const l of [...a]) if (l.freshOutput) fresh++;
    assert.equal(fresh, 2, 'Conv2d and BatchNorm2d say their output is fresh; ReLU does not');
    const bn = a.at<BatchNorm2d>(2);
    const orig = bn.forward.bind(bn);
    Object.defineProperty(bn, 'forward', { configurable: true, value: (t: Tensor) => { const y = orig(t); seen.push(y); return y; } });
    const y = a.forward(x);
    assert.equal(relus.length, 3);
    assert.ok(seen[0]!.amin().item() >= 0, 'the ReLU after BatchNorm2d overwrote the BatchNorm output');
    assert.notEqual(y, seen[0], 'the last ReLU follows a ReLU (not fresh): out of place');
    y.mul(w).sum().backward();
    assert.ok(y.sub(ref).abs().sum().item() === 0, 'same values');
    const ga = a.parameters().map((p) => p.grad!);
    const gb = b.parameters().map((p) => p.grad!);
    ga.forEach((g, i) => assert.ok(g.sub(gb[i]!).abs().sum().item() < 1e-5, `same gradient of parameter ${i}`));
  });
});

test('no ReLU in place after a layer that may keep its output, after the chain input, or while a hook exists', () => {
  tidy(() => {
    const x = randn([2, 3, 4, 4]);
    const keeping = new KeepingBN(3);
    const y = new Sequential(keeping, new ReLU()).forward(x);
    assert.notEqual(y, keeping.kept, 'a subclass is not fresh');
    assert.ok(keeping.kept!.amin().item() < 0, 'its output is untouched');
    const x2 = randn([2, 3, 4, 4]);
    const before = x2.clone();
    new Sequential(new ReLU()).forward(x2);
    assert.equal(x2.sub(before).abs().sum().item(), 0, 'the chain input is never overwritten');
    const bn = new BatchNorm2d(3);
    let out: Tensor | null = null;
    const h = bn.registerForwardHook((_m, _i, o) => (out = o));
    const z = new Sequential(bn, new ReLU()).forward(x);
    h.remove();
    assert.notEqual(z, out);
    assert.ok(out!.amin().item() < 0, 'a hook\'s view of the BatchNorm output is untouched');
  });
});
