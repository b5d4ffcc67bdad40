// The optimizers, clipGradNorm and the schedulers against Debian's PyTorch 1.13 (float64): the
// same initial parameters and the same gradient sequence go to both sides; one Python process
// computes every case (JSON over stdin/stdout).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Tensor, tensor, tidy } from '../src/tensor/index.js';
import { SGD, AdamW, clipGradNorm, CosineAnnealingLR, StepLR, LinearWarmup, type LRScheduler } from '../src/optim/index.js';
import { PYTHON, skipWithoutTorch } from './helpers/python.js';
import { assertClose } from './helpers/assert.js';
import { randArray } from './helpers/random.js';

const PY = String.raw`
import json, sys, torch
torch.set_default_dtype(torch.float64)
from torch.optim import lr_scheduler as S
req = json.load(sys.stdin)
out = {'optim': [], 'clip': [], 'sched': {}}

def params_of(c):
    return [torch.tensor(v, dtype=torch.float64).reshape(s).requires_grad_() for v, s in zip(c['init'], c['shapes'])]

for c in req['optim']:
    ps = params_of(c)
    groups = [dict(g['options'], params=[ps[i] for i in g['params']]) for g in c['groups']]
    if 'betas' in c['defaults']:
        c['defaults']['betas'] = tuple(c['defaults']['betas'])
    for g in groups:
        if 'betas' in g: g['betas'] = tuple(g['betas'])
    opt = (torch.optim.SGD if c['kind'] == 'sgd' else torch.optim.AdamW)(groups, **c['defaults'])
    trace = []
    for step in c['grads']:
        for p, g, s in zip(ps, step, c['shapes']):
            p.grad = None if g is None else torch.tensor(g, dtype=torch.float64).reshape(s)
        opt.step()
        trace.append([p.detach().reshape(-1).tolist() for p in ps])
    out['optim'].append(trace)

for c in req['clip']:
    ps = params_of(c)
    for p, g, s in zip(ps, c['grads'], c['shapes']):
        p.grad = torch.tensor(g, dtype=torch.float64).reshape(s)
    total = torch.nn.utils.clip_grad_norm_(ps, c['maxNorm'], norm_type=float(c['normType']))
    out['clip'].append({'total': float(total), 'grads': [p.grad.reshape(-1).tolist() for p in ps]})

def lrs(make, epochs):
    ps = [torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)]
    opt = torch.optim.SGD([{'params': [ps[0]], 'lr': 0.1}, {'params': [ps[1]], 'lr': 0.02}], lr=1.0)
    sch = make(opt)
    seq = [sch.get_last_lr()]
    for _ in range(epochs):
        opt.step()
        sch.step()
        seq.append(sch.get_last_lr())
    return seq

out['sched']['cosine'] = lrs(lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001), 25)
out['sched']['cosine0'] = lrs(lambda o: S.CosineAnnealingLR(o, T_max=7), 7)
out['sched']['step'] = lrs(lambda o: S.StepLR(o, step_size=3, gamma=0.5), 12)
out['sched']['warmup'] = lrs(lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.25, total_iters=4), S.CosineAnnealingLR(o, T_max=8, eta_min=0.0005)], milestones=[4]), 14)
json.dump(out, sys.stdout)
`;

type Grads = (number[] | null)[][];
interface OptimCase {
  name: string;
  kind: 'sgd' | 'adamw';
  shapes: number[][];
  init: number[][];
  groups: { params: number[]; options: Record<string, unknown> }[];
  defaults: Record<string, unknown>;
  grads: Grads;
}

const SHAPES = [[2, 3], [4], [1, 2, 2]];
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
const init = (seed: number) => SHAPES.map((s, i) => randArray(numel(s), seed * 31 + i, -2, 2));
/** A gradient sequence; `holes` lists [step, param] pairs that get no gradient. */
function gradSeq(steps: number, seed: number, holes: [number, number][] = []): Grads {
  return Array.from({ length: steps }, (_, t) =>
    SHAPES.map((s, i) => (holes.some(([a, b]) => a === t && b === i) ? null : randArray(numel(s), seed * 1009 + t * 17 + i, -1.5, 1.5))),
  );
}
const oneGroup = (options: Record<string, unknown> = {}) => [{ params: [0, 1, 2], options }];
// torch's option names -> ours
const camel = (o: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [k === 'weight_decay' ? 'weightDecay' : k, v]));

const CASES: OptimCase[] = [
  { name: 'SGD plain', kind: 'sgd', defaults: { lr: 0.1 } },
  { name: 'SGD momentum', kind: 'sgd', defaults: { lr: 0.05, momentum: 0.9 } },
  { name: 'SGD momentum + dampening', kind: 'sgd', defaults: { lr: 0.05, momentum: 0.8, dampening: 0.3 } },
  { name: 'SGD nesterov', kind: 'sgd', defaults: { lr: 0.05, momentum: 0.9, nesterov: true } },
  { name: 'SGD weight decay', kind: 'sgd', defaults: { lr: 0.1, weight_decay: 0.2 } },
  { name: 'SGD momentum + weight decay', kind: 'sgd', defaults: { lr: 0.05, momentum: 0.9, weight_decay: 0.1, dampening: 0.1 } },
  { name: 'SGD nesterov + weight decay', kind: 'sgd', defaults: { lr: 0.05, momentum: 0.7, nesterov: true, weight_decay: 0.05 } },
  { name: 'SGD momentum, missing grads', kind: 'sgd', defaults: { lr: 0.05, momentum: 0.9, weight_decay: 0.01 }, holes: [[0, 1], [3, 0], [3, 2]] },
  {
    name: 'SGD param groups',
    kind: 'sgd',
    defaults: { lr: 0.1, momentum: 0.9 },
    groups: [
      { params: [0, 2], options: { lr: 0.01, weight_decay: 0.1 } },
      { params: [1], options: { nesterov: true } },
    ],
  },
  { name: 'AdamW defaults', kind: 'adamw', defaults: {} },
  { name: 'AdamW betas, eps, weight decay', kind: 'adamw', defaults: { lr: 0.01, betas: [0.8, 0.99], eps: 1e-6, weight_decay: 0.1 } },
  { name: 'AdamW no weight decay', kind: 'adamw', defaults: { lr: 0.02, weight_decay: 0 } },
  { name: 'AdamW amsgrad', kind: 'adamw', defaults: { lr: 0.01, amsgrad: true, weight_decay: 0.05 } },
  { name: 'AdamW missing grads (per-parameter step counts)', kind: 'adamw', defaults: { lr: 0.01, amsgrad: true }, holes: [[0, 2], [1, 2], [4, 0]] },
  {
    name: 'AdamW param groups',
    kind: 'adamw',
    defaults: { lr: 0.001 },
    groups: [
      { params: [0], options: { lr: 0.03, weight_decay: 0 } },
      { params: [1, 2], options: { lr: 0.005, betas: [0.5, 0.9], amsgrad: true } },
    ],
  },
].map((c, k) => ({
  name: c.name,
  kind: c.kind as 'sgd' | 'adamw',
  shapes: SHAPES,
  init: init(k + 1),
  groups: c.groups ?? oneGroup(),
  defaults: c.defaults,
  grads: gradSeq(6, k + 1, (c.holes ?? []) as [number, number][]),
}));

interface ClipCase {
  shapes: number[][];
  init: number[][];
  grads: number[][];
  maxNorm: number;
  normType: number | 'inf';
}
const CLIPS: ClipCase[] = (
  [
    { maxNorm: 0.5, normType: 2 },
    { maxNorm: 100, normType: 2 },
    { maxNorm: 0.3, normType: 'inf' },
  ] as const
).map((c, k) => ({ ...c, shapes: SHAPES, init: init(50 + k), grads: SHAPES.map((s, i) => randArray(numel(s), 700 + k * 5 + i, -1, 1)) }));

interface TorchOut {
  optim: number[][][][];
  clip: { total: number; grads: number[][] }[];
  sched: Record<string, number[][]>;
}

const skip = skipWithoutTorch();
let cached: TorchOut | undefined;
function torchResults(): TorchOut {
  if (cached) return cached;
  const r = spawnSync(PYTHON, ['-c', PY], {
    input: JSON.stringify({ optim: CASES, clip: CLIPS }),
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  if (r.status !== 0) throw new Error(`python failed (status ${r.status}): ${r.stderr}`);
  cached = JSON.parse(r.stdout) as TorchOut;
  return cached;
}

const params64 = (c: { init: number[][]; shapes: number[][] }): Tensor[] =>
  c.init.map((v, i) => tensor(v, c.shapes[i], { dtype: 'float64' }).requiresGrad_(true));
const TOL = { rtol: 1e-9, atol: 1e-12 };

describe('optimizers vs torch.optim (float64)', { skip }, () => {
  CASES.forEach((c, k) => {
    test(c.name, () =>
      tidy(() => {
        const ps = params64(c);
        const groups = c.groups.map((g) => ({ params: g.params.map((i) => ps[i]!), ...camel(g.options) }));
        const defaults = camel(c.defaults);
        const opt = c.kind === 'sgd' ? new SGD(groups, defaults as { lr: number }) : new AdamW(groups, defaults);
        const expected = torchResults().optim[k]!;
        c.grads.forEach((step, t) => {
          step.forEach((g, i) => {
            const gt = g === null ? null : tensor(g, c.shapes[i], { dtype: 'float64' });
            ps[i]!.grad = gt;
            gt?.dispose();
          });
          opt.step();
          ps.forEach((p, i) => assertClose(p, expected[t]![i]!, TOL, `${c.name}: step ${t + 1}, param ${i}`));
        });
        opt.dispose();
      }),
    );
  });
});

describe('clipGradNorm vs torch.nn.utils.clip_grad_norm_ (float64)', { skip }, () => {
  CLIPS.forEach((c, k) => {
    test(`maxNorm ${c.maxNorm}, norm ${c.normType}`, () =>
      tidy(() => {
        const ps = params64(c);
        ps.forEach((p, i) => (p.grad = tensor(c.grads[i]!, c.shapes[i], { dtype: 'float64' })));
        const total = clipGradNorm(ps, c.maxNorm, { normType: c.normType === 'inf' ? Infinity : c.normType });
        const want = torchResults().clip[k]!;
        assertClose([total], [want.total], TOL, 'total norm');
        ps.forEach((p, i) => assertClose(p.grad!, want.grads[i]!, TOL, `clipped grad ${i}`));
      }),
    );
  });
});

describe('schedulers vs torch.optim.lr_scheduler', { skip }, () => {
  // two groups with lr 0.1 and 0.02, as on the Python side
  const run = (make: (o: SGD) => LRScheduler, epochs: number): number[][] =>
    tidy(() => {
      const a = tensor([0], [1], { dtype: 'float64' }).requiresGrad_(true);
      const b = tensor([0], [1], { dtype: 'float64' }).requiresGrad_(true);
      const opt = new SGD([{ params: [a], lr: 0.1 }, { params: [b], lr: 0.02 }], { lr: 1 });
      const s = make(opt);
      const seq = [s.getLastLr()];
      for (let e = 0; e < epochs; e++) {
        s.step();
        assert.deepEqual(opt.paramGroups.map((g) => g.lr), s.getLastLr(), 'the groups carry the scheduled lr');
        seq.push(s.getLastLr());
      }
      return seq;
    });
  const check = (name: string, got: number[][]) => {
    const want = torchResults().sched[name]!;
    assert.equal(got.length, want.length);
    got.forEach((lrs, e) => assertClose(lrs, want[e]!, { rtol: 1e-9, atol: 1e-15 }, `${name} epoch ${e}`));
  };
  test('CosineAnnealingLR (eta_min, past T_max)', () => check('cosine', run((o) => new CosineAnnealingLR(o, { tMax: 10, etaMin: 0.001 }), 25)));
  test('CosineAnnealingLR down to 0', () => check('cosine0', run((o) => new CosineAnnealingLR(o, { tMax: 7 }), 7)));
  test('StepLR', () => check('step', run((o) => new StepLR(o, { stepSize: 3, gamma: 0.5 }), 12)));
  test('LinearWarmup + cosine = SequentialLR(LinearLR, CosineAnnealingLR)', () =>
    check('warmup', run((o) => new LinearWarmup(new CosineAnnealingLR(o, { tMax: 8, etaMin: 0.0005 }), { epochs: 4, startFactor: 0.25 }), 14)));
});
