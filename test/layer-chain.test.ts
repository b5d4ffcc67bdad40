// layerChain (src/nn/sequential.ts): in inference mode a Sequential frees each intermediate result
// once the next layer has made its own; never the input, a result passed through unchanged, or
// anything while a forward hook exists; outside inference mode (no-grad, training) nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn, noGrad, tidy, inferenceMode, type Tensor } from '../src/tensor/index.js';
import { Module } from '../src/nn/module.js';
import { Identity } from '../src/nn/basic.js';
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
