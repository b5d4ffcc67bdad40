// catShuffle in training (native/src/shuffle-grad.cc): channel_shuffle(cat([a, b], 1), 2) as one
// autograd function on channels_last float32 CPU tensors. Its values and both gradients must equal
// the ATen ops' exactly (both are copies), whatever layout the incoming gradient has; other
// layouts and dtypes take the ATen ops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn, tidy, noGrad, type Tensor } from '../src/tensor/index.js';
import { cat } from '../src/tensor/functional.js';
import { catShuffle, channelShuffle } from '../src/models/shufflenetv2.js';

const aten = (a: Tensor, b: Tensor): Tensor => channelShuffle(cat([a, b], 1), 2);
const same = (p: Tensor, q: Tensor, what: string) => {
  assert.deepEqual(p.shape, q.shape, what);
  assert.equal(p.sub(q).abs().sum().item(), 0, what);
};

/** Output and gradients of x and b, where a is x's first half of channels (ShuffleNetV2's split). */
function run(f: (a: Tensor, b: Tensor) => Tensor, x: Tensor, b: Tensor, upstream: (y: Tensor) => Tensor) {
  const [a] = x.chunk(2, 1) as [Tensor, Tensor];
  const y = f(a, b.mul(3));
  upstream(y).backward();
  const r = { y: y.detach().clone(), gx: x.grad!.clone(), gb: b.grad!.clone(), channelsLast: y.isContiguous('channels_last') };
  x.grad = null;
  b.grad = null;
  return r;
}

test('channels_last: values and gradients equal the ATen ops exactly, whatever the incoming gradient layout', () => {
  tidy(() => {
    const x = randn([3, 14, 5, 4]).contiguous('channels_last').requiresGrad_();
    const b = randn([3, 7, 5, 4]).contiguous('channels_last').requiresGrad_();
    const nchw = randn([3, 14, 5, 4]);
    const upstreams: [string, (y: Tensor) => Tensor][] = [
      ['NCHW gradient', (y) => y.mul(nchw).sum()],
      ['channels_last gradient', (y) => y.mul(nchw.contiguous('channels_last')).sum()],
      ['expanded gradient', (y) => y.sum()],
      ['gradient through a channel slice', (y) => (y.chunk(2, 1)[1] as Tensor).mul(nchw.narrow(1, 0, 7)).sum()],
    ];
    for (const [what, up] of upstreams) {
      const n = run(catShuffle, x, b, up);
      const r = run(aten, x, b, up);
      assert.equal(n.channelsLast, true, what);
      same(n.y, r.y, `${what}: output`);
      same(n.gx, r.gx, `${what}: gradient of the split input`);
      same(n.gb, r.gb, `${what}: gradient of the branch`);
    }
  });
});

test('a gradient reaches only the input that needs one; no-grad and NCHW / float64 inputs give the ATen result', () => {
  tidy(() => {
    const a = randn([2, 6, 3, 3]).contiguous('channels_last');
    const b = randn([2, 6, 3, 3]).contiguous('channels_last').requiresGrad_();
    const y = catShuffle(a, b);
    assert.equal(y.requiresGrad, true);
    y.mul(y).sum().backward();
    // d(sum y^2)/dy = 2y; the branch's channels are the odd ones
    const odd = y.detach().mul(2).contiguous().view([2, 6, 2, 3, 3]).select(2, 1);
    same(b.grad!, odd.contiguous('channels_last'), 'the branch gets the odd channels of the gradient');
    assert.equal(a.grad, null);
    same(noGrad(() => catShuffle(a, b)), aten(a, b.detach()), 'no-grad');
    for (const [what, p, q] of [
      ['NCHW', randn([2, 4, 3, 3]), randn([2, 4, 3, 3])],
      ['float64', randn([2, 4, 3, 3], { dtype: 'float64' }).contiguous('channels_last'), randn([2, 4, 3, 3], { dtype: 'float64' }).contiguous('channels_last')],
    ] as const) {
      const pg = p.requiresGrad_();
      same(catShuffle(pg, q), aten(pg, q), what);
    }
  });
});
