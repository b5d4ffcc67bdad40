// Native memory: tidy scopes, keep, dispose, Symbol.dispose, and flat memory over many training steps.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Tensor, tensor, zeros, ones, tidy, keep, scopeDepth, memory, getNumThreads, setNumThreads } from '../src/tensor/index.js';
import { makeTrainer } from './helpers/tiny-trainer.js';

const live = (): number => memory().liveTensors;

describe('tidy', () => {
  test('frees everything created inside except the returned tensor', () => {
    const before = live();
    let inner: Tensor[] = [];
    const r = tidy(() => {
      const a = zeros([3]);
      const b = a.add(1);
      const c = b.mul(2);
      inner = [a, b];
      return c;
    });
    assert.equal(live(), before + 1);
    assert.ok(inner.every((t) => t.isDisposed));
    assert.equal(r.isDisposed, false);
    assert.deepEqual(r.toNumbers(), [2, 2, 2]);
    r.dispose();
    assert.equal(live(), before);
  });

  test('nested scopes: a value returned by the inner scope belongs to the outer one', () => {
    const before = live();
    let fromInner: Tensor | null = null;
    const depth = scopeDepth();
    const r = tidy(() => {
      assert.equal(scopeDepth(), depth + 1);
      fromInner = tidy(() => {
        assert.equal(scopeDepth(), depth + 2);
        ones([2]);
        return ones([2]).mul(3);
      });
      assert.equal(fromInner.isDisposed, false);
      return fromInner.add(1);
    });
    assert.equal(scopeDepth(), depth);
    assert.equal(fromInner!.isDisposed, true, 'the outer scope did not return it');
    assert.deepEqual(r.toNumbers(), [4, 4]);
    r.dispose();
    assert.equal(live(), before);
  });

  test('arrays, plain objects and Maps of tensors are returned whole; non-tensor results are fine', () => {
    const before = live();
    const out = tidy(() => {
      zeros([5]);
      return { list: [ones([1]), ones([2])], nested: { m: new Map([['k', ones([3])]]) }, n: 3, s: 'x' };
    });
    assert.equal(live(), before + 3);
    assert.equal(out.n, 3);
    assert.deepEqual(out.nested.m.get('k')!.shape, [3]);
    for (const t of [...out.list, out.nested.m.get('k')!]) t.dispose();
    assert.equal(live(), before);
    assert.equal(tidy(() => zeros([2]).sum().item()), 0);
    assert.equal(live(), before);
  });

  test('an exception inside (nested) tidy frees everything and propagates', () => {
    const before = live();
    let made: Tensor[] = [];
    assert.throws(
      () =>
        tidy(() => {
          made.push(zeros([4]));
          tidy(() => {
            made.push(ones([4]));
            throw new Error('inner failure');
          });
        }),
      /inner failure/,
    );
    assert.ok(made.every((t) => t.isDisposed));
    assert.equal(live(), before);
    made = [];
  });

  test('tensors created before the scope are not touched', () => {
    const outside = ones([2]);
    const r = tidy(() => {
      outside.add(1);
      return outside;
    });
    assert.equal(r, outside);
    assert.equal(outside.isDisposed, false);
    outside.dispose();
  });

  test('refuses an async function and still frees what it made', async () => {
    const before = live();
    assert.throws(() => tidy((async () => zeros([1])) as unknown as () => Tensor), /synchronous/);
    assert.equal(live(), before);
  });

  test('keep() takes a tensor out of the scope', () => {
    const before = live();
    let other: Tensor | null = null;
    let k: Tensor | null = null;
    const sum = tidy(() => {
      other = zeros([2]);
      k = keep(ones([2]));
      return k.sum().item();
    });
    assert.equal(sum, 2);
    assert.equal(other!.isDisposed, true);
    assert.equal(k!.isDisposed, false);
    assert.equal(live(), before + 1);
    tidy(() => {}); // a later scope does not free it either
    assert.equal(live(), before + 1);
    k!.dispose();
    assert.equal(live(), before);
  });
});

describe('dispose', () => {
  test('is idempotent and releases the accounted bytes once', () => {
    const before = memory();
    const t = zeros([1000]);
    assert.equal(memory().externalBytes, before.externalBytes + 4000);
    t.dispose();
    t.dispose();
    assert.equal(t.isDisposed, true);
    assert.deepEqual(memory(), before);
  });

  test('a tensor disposed inside tidy is not disposed again or counted twice', () => {
    const before = live();
    tidy(() => {
      const a = zeros([2]);
      a.dispose();
      zeros([2]);
    });
    assert.equal(live(), before);
  });

  test('Symbol.dispose frees at the end of a using block', () => {
    const before = live();
    let seen: Tensor | null = null;
    {
      using t = zeros([3]);
      seen = t;
      assert.equal(live(), before + 1);
    }
    assert.equal(seen!.isDisposed, true);
    assert.equal(live(), before);
  });

  test('reading .grad gives a new handle each time; disposing it keeps the gradient', () => {
    const x = tensor([1, 2], [2], { requiresGrad: true });
    tidy(() => x.mul(x).sum().backward());
    const before = live();
    const g1 = x.grad!;
    const g2 = x.grad!;
    assert.notEqual(g1, g2);
    assert.equal(live(), before + 2);
    g1.dispose();
    assert.deepEqual(g2.toNumbers(), [2, 4]);
    g2.dispose();
    tidy(() => assert.deepEqual(x.grad!.toNumbers(), [2, 4]));
    assert.equal(live(), before);
    x.dispose();
  });
});

const mib = (bytes: number) => bytes / 2 ** 20;

describe('training loop memory', () => {
  // A tiny model gains nothing from threads, and other processes share the cores.
  let threads = 0;
  before(() => {
    threads = getNumThreads();
    setNumThreads(1);
  });
  after(() => setNumThreads(threads));

  test('1000 SGD steps of a tiny conv + linear model: live tensors return to the same count, RSS stays flat', async () => {
    const trainer = makeTrainer();
    const baseline = live();
    let rss200 = 0;
    const losses: number[] = [];
    const t0 = performance.now();
    for (let i = 1; i <= 1000; i++) {
      losses.push(trainer.step());
      assert.equal(live(), baseline, `live tensors changed at step ${i}`);
      if (i === 200) rss200 = process.memoryUsage().rss;
      // A real training loop turns the event loop (progress, data loading); Node runs the
      // finalizers of collected native wrappers only then (see the synchronous case below).
      if (i % 10 === 0) await new Promise((r) => setImmediate(r));
    }
    const ms = (performance.now() - t0) / 1000;
    const growth = mib(process.memoryUsage().rss - rss200);
    console.log(`# 1000 steps, ${ms.toFixed(2)} ms/step; RSS growth steps 200 -> 1000: ${growth.toFixed(2)} MiB; loss ${losses[0]!.toFixed(3)} -> ${losses[999]!.toFixed(3)}`);
    assert.ok(growth < 20, `RSS grew ${growth.toFixed(1)} MiB between step 200 and 1000`);
    const early = losses.slice(0, 20).reduce((a, b) => a + b) / 20;
    const late = losses.slice(-20).reduce((a, b) => a + b) / 20;
    assert.ok(late < early, `training makes progress (${early} -> ${late})`);
    assert.ok(trainer.params.every((p) => p.grad === null));
    trainer.dispose();
    assert.equal(live(), baseline - trainer.count);
  });

});
