// A handful of ops on the same inputs in lorkd and in PyTorch (Debian's /usr/bin/python3), values
// and input gradients, float64. Skips cleanly when torch is absent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type Tensor, tensor, tidy, conv2d, batchNorm, crossEntropy, klDiv, logSoftmax, interpolate, einsum, maxPool2d,
} from '../src/tensor/index.js';
import { runPython, skipWithoutTorch } from './helpers/python.js';
import { lcg } from './helpers/random.js';

const f64 = { dtype: 'float64' as const };

/** Deterministic inputs both sides build from the same numbers. */
function data(n: number, seed: number): number[] {
  const r = lcg(seed);
  return Array.from({ length: n }, () => r() * 2 - 1);
}

interface Case {
  name: string;
  /** lorkd: inputs -> scalar-reducible output. */
  ours: (xs: Tensor[]) => Tensor;
  /** The same in PyTorch, as a Python expression of x0, x1, ... (torch as t, F as F). */
  py: string;
  shapes: number[][];
  /** Extra python lines defining constants used by py. */
  pre?: string;
  target?: { values: number[]; shape: number[] };
}

const cases: Case[] = [
  { name: 'conv2d stride 2, padding 1, groups 2', ours: ([x, w]) => conv2d(x!, w!, null, { stride: 2, padding: 1, groups: 2 }), py: 'F.conv2d(x0, x1, stride=2, padding=1, groups=2)', shapes: [[2, 4, 7, 7], [6, 2, 3, 3]] },
  { name: 'batch_norm, training', ours: ([x, w, b]) => batchNorm(x!, { weight: w, bias: b, training: true }), py: 'F.batch_norm(x0, None, None, x1, x2, training=True)', shapes: [[3, 4, 5, 5], [4], [4]] },
  { name: 'max_pool2d 3x3 stride 2 padding 1', ours: ([x]) => maxPool2d(x!, 3, { stride: 2, padding: 1 }), py: 'F.max_pool2d(x0, 3, 2, 1)', shapes: [[2, 3, 9, 9]] },
  { name: 'interpolate bilinear to 11x5', ours: ([x]) => interpolate(x!, [11, 5], 'bilinear', false), py: "F.interpolate(x0, size=(11, 5), mode='bilinear', align_corners=False)", shapes: [[2, 3, 6, 7]] },
  { name: 'einsum bij,bjk->bik', ours: ([a, b]) => einsum('bij,bjk->bik', a!, b!), py: "t.einsum('bij,bjk->bik', x0, x1)", shapes: [[2, 3, 4], [2, 4, 5]] },
  { name: 'logsumexp and var over dim 1', ours: ([x]) => x!.logsumexp(1).add(x!.var(1)), py: 't.logsumexp(x0, 1) + x0.var(1)', shapes: [[4, 6]] },
  {
    name: 'cross_entropy with label smoothing and ignore_index', shapes: [[5, 4]],
    ours: ([x]) => crossEntropy(x!, tensor([0, 3, -100, 2, 1], [5], { dtype: 'int64' }), { labelSmoothing: 0.1 }),
    py: 'F.cross_entropy(x0, t.tensor([0, 3, -100, 2, 1]), label_smoothing=0.1)',
  },
  {
    name: 'kl_div batchmean of log_softmax against softmax', shapes: [[3, 5], [3, 5]],
    ours: ([a, b]) => klDiv(logSoftmax(a!, 1), logSoftmax(b!, 1).exp(), 'batchmean'),
    py: "F.kl_div(F.log_softmax(x0, 1), F.softmax(x1, 1), reduction='batchmean')",
  },
];

test('ops agree with PyTorch (values and input gradients, float64)', { skip: skipWithoutTorch() }, () => {
  const inputs = cases.map((c, i) => c.shapes.map((s, j) => data(s.reduce((a, b) => a * b, 1), 100 * i + j + 1)));
  const script = `
import json, sys, torch as t
import torch.nn.functional as F
t.set_default_dtype(t.float64)
cases = json.loads(sys.argv[1])
out = []
for c in cases:
    xs = [t.tensor(v, dtype=t.float64).reshape(s).requires_grad_() for v, s in zip(c['inputs'], c['shapes'])]
    env = {'t': t, 'F': F}
    env.update({'x%d' % i: x for i, x in enumerate(xs)})
    y = eval(c['py'], env)
    (y * t.arange(1, y.numel() + 1, dtype=t.float64).reshape(y.shape)).sum().backward()
    out.append({'y': y.detach().reshape(-1).tolist(), 'shape': list(y.shape), 'grads': [x.grad.reshape(-1).tolist() for x in xs]})
print(json.dumps(out))
`;
  const ref = JSON.parse(runPython(script, [JSON.stringify(cases.map((c, i) => ({ py: c.py, shapes: c.shapes, inputs: inputs[i] })))])) as { y: number[]; shape: number[]; grads: number[][] }[];
  cases.forEach((c, i) =>
    tidy(() => {
      const xs = c.shapes.map((s, j) => tensor(inputs[i]![j]!, s, f64).requiresGrad_());
      const y = c.ours(xs);
      assert.deepEqual(y.shape, ref[i]!.shape, c.name);
      const yv = y.toNumbers();
      yv.forEach((v, k) => assert.ok(Math.abs(v - ref[i]!.y[k]!) <= 1e-10 * (1 + Math.abs(v)), `${c.name}: value ${k}: ${v} vs ${ref[i]!.y[k]}`));
      const weights = tensor(Array.from({ length: y.numel }, (_, k) => k + 1), y.shape, f64);
      y.mul(weights).sum().backward();
      xs.forEach((x, j) => {
        const g = x.grad!.toNumbers();
        g.forEach((v, k) => assert.ok(Math.abs(v - ref[i]!.grads[j]![k]!) <= 1e-9 * (1 + Math.abs(v)), `${c.name}: grad of input ${j} at ${k}: ${v} vs ${ref[i]!.grads[j]![k]}`));
      });
    }),
  );
});
