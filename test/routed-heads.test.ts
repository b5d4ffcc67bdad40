// routedLinear (native/src/routed-heads.cc): a task-sorted batch through each task's head in one
// call, as the decomposition model's heads run. Checked against a narrow and a linear per task
// (the per-head path it replaces): values on the direct loop (no gradient wanted, small heads) and
// on the ATen route (large heads), gradients of x, weights and biases under autograd, null for absent tasks, one-line
// errors, and no tensor left behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn, tidy, linear, routedLinear, noGrad, inferenceMode, manualSeed, memory, type Tensor } from '../src/tensor/index.js';

const maxDiff = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).abs().amax().item());

function perHead(x: Tensor, counts: number[], ws: Tensor[], bs: Tensor[]): (Tensor | null)[] {
  let off = 0;
  return counts.map((c, t) => {
    const y = c === 0 ? null : linear(x.narrow(0, off, c), ws[t]!, bs[t]!);
    off += c;
    return y;
  });
}

test('routedLinear equals a narrow and a linear per task, without and with a gradient; null for absent tasks', () => {
  manualSeed(31);
  const live = memory().liveTensors;
  tidy(() => {
    const counts = [2, 0, 3, 1];
    const C = 37;
    const x = randn([6, C]);
    const ws = [3, 5, 2, 7].map((k) => randn([k, C]));
    const bs = [3, 5, 2, 7].map((k) => randn([k]));
    for (const [mode, run] of [['noGrad', noGrad], ['inferenceMode', inferenceMode]] as const) {
      const got = run(() => routedLinear(x, counts, ws, bs));
      const ref = perHead(x, counts, ws, bs);
      assert.equal(got[1], null, mode);
      got.forEach((g, t) => {
        if (counts[t] === 0) return;
        assert.deepEqual(g!.shape, ref[t]!.shape, `${mode} task ${t}`);
        assert.ok(maxDiff(g!, ref[t]!) <= 1e-5, `${mode} task ${t}: ${maxDiff(g!, ref[t]!)}`);
      });
    }
    // A head past the direct loop's size (300 x 64 x 64 multiply-adds) takes ATen's linear: the same values.
    {
      const big = randn([301, 64]);
      const bw = [randn([64, 64]), randn([5, 64])];
      const bb = [randn([64]), randn([5])];
      const got = noGrad(() => routedLinear(big, [300, 1], bw, bb));
      const ref = perHead(big, [300, 1], bw, bb);
      got.forEach((g, t) => assert.ok(maxDiff(g!, ref[t]!) <= 1e-4, `big head ${t}: ${maxDiff(g!, ref[t]!)}`));
    }
    // Autograd: the same loss through both gives the same gradients.
    const grads = (f: (xx: Tensor, w: Tensor[], b: Tensor[]) => (Tensor | null)[]) => {
      const xx = x.clone().requiresGrad_(true);
      const w = ws.map((t) => t.clone().requiresGrad_(true));
      const b = bs.map((t) => t.clone().requiresGrad_(true));
      const out = f(xx, w, b);
      out.map((o, t) => (o === null ? null : o.mul(t + 1).sum())).filter((l): l is Tensor => l !== null).reduce((a, l) => a.add(l)).backward();
      return [xx.grad!, ...w.map((t) => t.grad!), ...b.map((t) => t.grad!)].filter((g) => g !== null);
    };
    const g1 = grads((xx, w, b) => routedLinear(xx, counts, w, b));
    const g2 = grads((xx, w, b) => perHead(xx, counts, w, b));
    assert.equal(g1.length, g2.length);
    g1.forEach((g, i) => assert.ok(maxDiff(g, g2[i]!) <= 1e-5, `gradient ${i}`));
  });
  assert.equal(memory().liveTensors, live, 'no tensor leaked');
});

test('routedLinear: one-line errors for counts that do not match the batch or the heads', () => {
  tidy(() => {
    const x = randn([4, 8]);
    const ws = [randn([3, 8]), randn([3, 8])];
    const bs = [randn([3]), randn([3])];
    for (const [counts, w, b, msg] of [
      [[2, 1], ws, bs, /one row per counted image/],
      [[2, 2, 0], ws, bs, /one weight and one bias per task count/],
      [[5, -1], ws, bs, /negative task count/],
    ] as const) {
      assert.throws(() => noGrad(() => routedLinear(x, counts as unknown as number[], w as Tensor[], b as Tensor[])), (e: Error) => {
        assert.match(e.message, msg);
        assert.ok(!e.message.includes('\n'), 'one line');
        return true;
      });
    }
    // Heads of the wrong width fall to ATen, which refuses with its own message.
    assert.throws(() => noGrad(() => routedLinear(x, [2, 2], [randn([3, 7]), randn([3, 8])], bs)));
  });
});
