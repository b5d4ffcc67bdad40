// Optimizer and scheduler state: save after 3 steps (through safetensors bytes and JSON, as a
// checkpoint would), load into a fresh optimizer over fresh parameters, run 2 more steps: the
// parameters equal those of 5 uninterrupted steps bit for bit. Also: load errors, zeroGrad,
// and flat native memory over many steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, tidy, memory, UserError } from '../src/tensor/index.js';
import { SGD, AdamW, clipGradNorm, CosineAnnealingLR, LinearWarmup, type Optimizer, type OptimizerOptions, type OptimizerStateDict, type LRScheduler } from '../src/optim/index.js';
import { encodeSafetensors, decodeSafetensors } from '../src/io/safetensors.js';
import { ttest } from './helpers/tidy-test.js';
import { hex } from './helpers/assert.js';
import { randArray } from './helpers/random.js';

const SHAPES = [[3, 2], [5], [2, 1, 2]];
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
const makeParams = (): Tensor[] => SHAPES.map((s, i) => tensor(randArray(numel(s), 10 + i, -1, 1), s).requiresGrad_(true));
const gradsAt = (t: number): number[][] => SHAPES.map((s, i) => randArray(numel(s), 1000 + 7 * t + i, -2, 2));

type AnyOpt = Optimizer<OptimizerOptions>;
interface Setup {
  name: string;
  make: (ps: Tensor[]) => AnyOpt;
  /** Optional scheduler stepped after every optimizer step. */
  sched?: (o: AnyOpt) => LRScheduler;
}

const SETUPS: Setup[] = [
  {
    name: 'SGD (nesterov, weight decay, two groups)',
    make: (ps) => new SGD([{ params: [ps[0]!, ps[2]!] }, { params: [ps[1]!], lr: 0.3, dampening: 0.2, nesterov: false }], { lr: 0.1, momentum: 0.9, weightDecay: 1e-2, nesterov: true }),
  },
  {
    name: 'AdamW (amsgrad, two groups) + warm-up cosine schedule',
    make: (ps) => new AdamW([{ params: [ps[0]!] }, { params: [ps[1]!, ps[2]!], lr: 0.02, betas: [0.8, 0.95] }], { lr: 0.05, amsgrad: true, weightDecay: 0.1 }),
    sched: (o) => new LinearWarmup(new CosineAnnealingLR(o, { tMax: 4, etaMin: 1e-3 }), { epochs: 2, startFactor: 0.2 }),
  },
];

function run(ps: Tensor[], opt: AnyOpt, sched: LRScheduler | undefined, from: number, to: number): void {
  for (let t = from; t < to; t++) {
    tidy(() => {
      const g = gradsAt(t);
      ps.forEach((p, i) => (p.grad = tensor(g[i]!, SHAPES[i])));
      opt.step();
      sched?.step();
    });
  }
}

/** Writes the state as a checkpoint would (safetensors + JSON metadata) and reads it back. */
function roundTrip(sd: OptimizerStateDict, sched: LRScheduler | undefined): { opt: OptimizerStateDict; sched: unknown } {
  const bytes = encodeSafetensors(sd.tensors, { optimizer: JSON.stringify(sd.groups), scheduler: JSON.stringify(sched?.stateDict() ?? null) });
  const back = decodeSafetensors(bytes);
  return { opt: { groups: JSON.parse(back.metadata.optimizer!), tensors: back.tensors }, sched: JSON.parse(back.metadata.scheduler!) };
}

for (const s of SETUPS) {
  ttest(`${s.name}: 3 steps + save/load + 2 steps == 5 steps, bit-exactly`, () => {
    const ref = makeParams();
    const refOpt = s.make(ref);
    const refSched = s.sched?.(refOpt);
    run(ref, refOpt, refSched, 0, 5);

    const a = makeParams();
    const optA = s.make(a);
    const schedA = s.sched?.(optA);
    run(a, optA, schedA, 0, 3);
    const saved = roundTrip(optA.stateDict(), schedA);
    const snapshot = a.map((p) => p.detach().clone());
    run(a, optA, schedA, 3, 4); // the old optimizer goes on: the saved copy must not change with it
    optA.dispose();

    const b = snapshot.map((t) => t.requiresGrad_(true));
    const optB = s.make(b);
    const schedB = s.sched?.(optB);
    optB.loadStateDict(saved.opt);
    if (schedB) schedB.loadStateDict(saved.sched as ReturnType<LRScheduler['stateDict']>);
    assert.deepEqual(optB.paramGroups.map((g) => g.lr), schedB ? schedB.getLastLr() : optB.paramGroups.map((g) => g.lr));
    run(b, optB, schedB, 3, 5);

    b.forEach((p, i) => assert.equal(hex(p.toBytes()), hex(ref[i]!.toBytes()), `param ${i} differs from the uninterrupted run`));
    assert.deepEqual(optB.paramGroups.map((g) => g.lr), refOpt.paramGroups.map((g) => g.lr));
    // and the state itself
    const sb = optB.stateDict();
    const sr = refOpt.stateDict();
    assert.deepEqual([...sb.tensors.keys()].sort(), [...sr.tensors.keys()].sort());
    for (const [k, t] of sr.tensors) assert.equal(hex(sb.tensors.get(k)!.toBytes()), hex(t.toBytes()), k);
    assert.deepEqual(sb.groups, sr.groups);
    optB.dispose();
    refOpt.dispose();
  });
}

ttest('stateDict: JSON groups with parameter indices, torch-style tensor keys', () => {
  const ps = makeParams();
  const opt = new AdamW([{ params: [ps[0]!, ps[1]!] }, { params: [ps[2]!], lr: 0.5 }], { amsgrad: true });
  run(ps, opt, undefined, 0, 2);
  const sd = opt.stateDict();
  assert.deepEqual(JSON.parse(JSON.stringify(sd.groups)), [
    { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: true, params: [0, 1] },
    { lr: 0.5, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: true, params: [2] },
  ]);
  const keys = [...sd.tensors.keys()].sort();
  assert.deepEqual(keys, [0, 1, 2].flatMap((i) => ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq', 'step'].map((n) => `state.${i}.${n}`)).sort());
  assert.deepEqual(sd.tensors.get('state.2.exp_avg')!.shape, SHAPES[2]);
  assert.deepEqual(sd.tensors.get('state.1.step')!.shape, []);
  assert.equal(sd.tensors.get('state.1.step')!.item(), 2);
  // the tensors are copies: changing them changes nothing in the optimizer
  sd.tensors.get('state.0.exp_avg')!.fill_(123);
  assert.notEqual(opt.stateDict().tensors.get('state.0.exp_avg')!.toNumbers()[0], 123);
  opt.dispose();
});

ttest('loadStateDict reports every problem in one UserError and changes nothing', () => {
  const ps = makeParams();
  const opt = new SGD(ps, { lr: 0.1, momentum: 0.9 });
  run(ps, opt, undefined, 0, 1);
  const good = opt.stateDict();
  const before = opt.stateDict();
  const bad: OptimizerStateDict = {
    groups: [{ ...good.groups[0]!, lr: 'fast' as unknown as number, nesterov: false }],
    tensors: new Map([
      ['state.0.momentum_buffer', tensor([1, 2, 3], [3])],
      ['state.7.momentum_buffer', tensor([1], [1])],
      ['state.1.velocity', tensor([1, 2, 3, 4, 5], [5])],
    ]),
  };
  assert.throws(
    () => opt.loadStateDict(bad),
    (e: Error) =>
      e instanceof UserError &&
      /"lr" has the wrong type/.test(e.message) &&
      /state\.0\.momentum_buffer: state \[3\] vs parameter \[3, 2\]/.test(e.message) &&
      /unexpected key state\.7\.momentum_buffer/.test(e.message) &&
      /unexpected key state\.1\.velocity/.test(e.message),
  );
  assert.throws(() => opt.loadStateDict({ groups: [...good.groups, ...good.groups], tensors: good.tensors }), /2 parameter groups, the optimizer 1/);
  assert.throws(() => opt.loadStateDict({ groups: [{ ...good.groups[0]!, params: [0, 1] }], tensors: good.tensors }), /2 parameters in the state, 3/);
  assert.throws(() => opt.loadStateDict({ groups: [{ ...good.groups[0]!, nesterov: true, dampening: 0.5 }], tensors: good.tensors }), /Nesterov/);
  const adam = new AdamW(ps, { amsgrad: true });
  const partial = new Map([['state.0.exp_avg', tensor(new Array(6).fill(0), [3, 2])]]);
  assert.throws(() => adam.loadStateDict({ groups: adam.stateDict().groups, tensors: partial }), /state\.0: missing step, exp_avg_sq, max_exp_avg_sq/);
  // nothing changed
  const after = opt.stateDict();
  assert.deepEqual(after.groups, before.groups);
  for (const [k, t] of before.tensors) assert.equal(hex(after.tensors.get(k)!.toBytes()), hex(t.toBytes()));
  opt.dispose();
  adam.dispose();
});

ttest('loadStateDict casts state to the parameter dtype', () => {
  const p = tensor([1, 2], [2], { dtype: 'float64' }).requiresGrad_(true);
  const opt = new SGD([p], { lr: 0.1, momentum: 0.5 });
  opt.loadStateDict({ groups: opt.stateDict().groups, tensors: new Map([['state.0.momentum_buffer', tensor([0.25, 0.5], [2])]]) });
  const buf = opt.stateDict().tensors.get('state.0.momentum_buffer')!;
  assert.equal(buf.dtype, 'float64');
  assert.deepEqual(buf.toNumbers(), [0.25, 0.5]);
  p.grad = tensor([1, 1], [2], { dtype: 'float64' });
  opt.step(); // buf = 0.5 [0.25, 0.5] + [1, 1]
  assert.deepEqual(p.toNumbers(), [1 - 0.1125, 2 - 0.125]);
  opt.dispose();
});

ttest('zeroGrad: to null (default) or zeroed in place', () => {
  const ps = makeParams();
  const opt = new SGD(ps, { lr: 0.1 });
  ps.forEach((p) => (p.grad = tensor(new Array(p.numel).fill(3), p.shape)));
  opt.zeroGrad(false);
  for (const p of ps) assert.deepEqual(p.grad!.toNumbers(), new Array(p.numel).fill(0));
  opt.zeroGrad();
  for (const p of ps) assert.equal(p.grad, null);
});

test('no native memory grows over many steps (optimizers, clipping, state dicts)', () => {
  tidy(() => {
    const ps = makeParams();
    const opts: AnyOpt[] = [
      new SGD(ps, { lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 1e-4 }),
      new AdamW(ps, { amsgrad: true }),
    ];
    const step = () =>
      tidy(() => {
        ps.forEach((p, i) => (p.grad = tensor(gradsAt(0)[i]!, SHAPES[i])));
        clipGradNorm(ps, 0.1);
        for (const o of opts) o.step();
        for (const o of opts) o.stateDict();
        for (const o of opts) o.zeroGrad();
      });
    for (let i = 0; i < 3; i++) step();
    const before = memory();
    for (let i = 0; i < 40; i++) step();
    const after = memory();
    assert.equal(after.liveTensors, before.liveTensors, 'live tensors');
    assert.equal(after.externalBytes, before.externalBytes, 'bytes');
    // the state buffers and workspaces are freed by dispose()
    for (const o of opts) o.dispose();
    // SGD: 3 momentum buffers + 3 workspaces; AdamW: 3 x (m, v, vmax) + 3 workspaces
    assert.equal(memory().liveTensors, before.liveTensors - 6 - 12);
  });
});
