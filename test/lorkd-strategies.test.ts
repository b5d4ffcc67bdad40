// EKS strategies: every strategy (and `auto`) computes the same function with the same gradients
// for every parameter (float64), equals a per-sample reference (each sample through a plain
// ShuffleNetV2 with W0 + delta of its task), gives absent tasks' factors no gradient (as their heads),
// and passes PEFT's mixed-batch test, with equal ranks and with a different rank per task. The fused
// native op is checked against finite differences.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  type Tensor,
  type DType,
  tensor,
  randn,
  mm,
  cat,
  conv2d,
  tidy,
  noGrad,
  manualSeed,
  memory,
} from '../src/tensor/index.js';
import { UserError } from '../src/tensor/errors.js';
import { Conv2d, BatchNorm2d } from '../src/nn/index.js';
import { createModel, type ImageClassifier } from '../src/models/index.js';
import {
  DecompositionModel,
  ExpertConv2d,
  Routing,
  STRATEGIES,
  RUN,
  type Strategy,
  type StrategyOption,
  type ExpertWeights,
  type TaskSpec,
  type RankSpec,
} from '../src/lorkd/index.js';
import { randArray } from './helpers/random.js';
import { gradcheck } from './helpers/gradcheck.js';

const MODEL = 'shufflenet_v2_x0_5';
const RANK = 2;
const ALPHA = 4; // scale alpha / r = 2, so a wrong scaling cannot hide
/** Unequal ranks: scales 2, 4/3 and 4 (every task's rank and scale differ). */
const UNEQUAL: Record<string, number> = { task0: 2, task1: 3, task2: 1 };
const RANKS: { name: string; rank: RankSpec }[] = [
  { name: 'equal ranks', rank: RANK },
  { name: 'unequal ranks', rank: UNEQUAL },
];
const rankOf = (spec: RankSpec, t: number): number => (typeof spec === 'number' ? spec : spec[`task${t}`]!);
// 24 px and 8-row batches: BatchNorm in train mode over few values amplifies rounding (~1e-8
// relative at 16 px with 4 rows); here strategies agree to ~1e-11, far inside RTOL.
const SIZE = 24;
const EVAL_SIZE = 16; // eval mode (running statistics) is well conditioned at any size
const TASKS: TaskSpec[] = [2, 3, 4].map((n, i) => ({ name: `task${i}`, classNames: Array.from({ length: n }, (_, c) => `c${c}`) }));
const RTOL = 1e-9;

/** A fixed pseudo-random tensor (independent of libtorch's generator). */
const fixed = (shape: number[], seed: number, dtype: DType = 'float64'): Tensor =>
  tensor(Float64Array.from(randArray(shape.reduce((a, b) => a * b, 1), seed)), shape, { dtype });

/** Gives B (zero at init), BatchNorm affine parameters and running statistics random values. */
function randomize(dm: DecompositionModel): void {
  noGrad(() => {
    for (const [, c] of dm.expertConvs()) for (const b of c.getModule('expertB').parameters()) b.normal_(0, 0.2);
    for (const m of dm.modules()) {
      if (!(m instanceof BatchNorm2d)) continue;
      m.getParameter('weight').uniform_(0.5, 1.5);
      m.getParameter('bias').uniform_(-0.2, 0.2);
      m.getBuffer('running_mean').normal_(0, 0.1);
      m.getBuffer('running_var').uniform_(0.5, 1.5);
    }
  });
}

function build(strategy: StrategyOption, dtype: DType = 'float64', seed = 1, rank: RankSpec = RANK): DecompositionModel {
  manualSeed(seed);
  const dm = new DecompositionModel({ model: MODEL, tasks: TASKS, rank, loraAlpha: ALPHA, strategy });
  randomize(dm);
  return dtype === 'float32' ? dm : dm.toDtype(dtype);
}

/** Largest |a - b| must stay within rtol of the reference's largest magnitude (per tensor). */
function assertNear(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  const tol = rtol * Math.max(scale, 1e-3);
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= tol)) assert.fail(`${what}[${i}]: ${actual[i]} vs ${expected[i]} (|diff| ${d} > ${tol})`);
  }
}

type Floats = Float64Array | Float32Array;
const floats = (t: Tensor): Floats => t.toArray() as Floats;

interface StepResult {
  features: Floats;
  logits: (Floats | null)[];
  grads: Map<string, Floats | null>;
}

/** forwardTasks, a loss weighting every output differently, backward; everything read back. */
function step(dm: DecompositionModel, x: Tensor, ids: number[], strategy?: Strategy, dtype: DType = 'float64'): StepResult {
  dm.zeroGrad();
  return tidy(() => {
    const out = dm.forwardTasks(x, ids, strategy);
    let loss = out.features.mul(fixed(out.features.shape, 11, dtype)).sum();
    out.logits.forEach((l, t) => {
      if (l) loss = loss.add(l.mul(fixed(l.shape, 20 + t, dtype)).sum());
    });
    loss.backward();
    return {
      features: floats(out.features),
      logits: out.logits.map((l) => (l ? floats(l) : null)),
      grads: new Map(dm.namedParameters().map(([n, p]) => [n, p.grad ? floats(p.grad) : null] as const)),
    };
  });
}

function assertSameStep(got: StepResult, ref: StepResult, what: string, rtol = RTOL): void {
  assertNear(got.features, ref.features, rtol, `${what}: features`);
  ref.logits.forEach((l, t) => {
    if (l === null) assert.equal(got.logits[t], null, `${what}: task ${t} absent`);
    else assertNear(got.logits[t]!, l, rtol, `${what}: logits of task ${t}`);
  });
  for (const [name, g] of ref.grads) {
    const h = got.grads.get(name);
    if (g === null) assert.equal(h, null, `${what}: ${name} has a gradient in one strategy only`);
    else {
      assert.ok(h, `${what}: ${name} has no gradient`);
      assertNear(h, g, rtol, `${what}: grad of ${name}`);
    }
  }
}

/** The task of a factor parameter `....expertA.task<t>` (null for other parameters). */
const factorTask = (name: string): number | null => {
  const m = /\.expert[AB]\.task(\d)$/.exec(name);
  return m ? Number(m[1]) : null;
};

const CASES: { name: string; ids: number[] }[] = [
  { name: 'mixed batch, unsorted task ids', ids: [2, 0, 1, 2, 0, 1, 1, 2] },
  { name: 'single-task batch', ids: [1, 1, 1, 1, 1, 1, 1, 1] },
  { name: 'task 1 absent', ids: [2, 0, 2, 0, 0, 2, 2, 0] },
];

for (const R of RANKS)
describe(`EKS strategies agree in float64 (outputs and every gradient), ${R.name}`, () => {
  const base = build('fused', 'float64', 1, R.rank);
  const auto = build('auto', 'float64', 99, R.rank);
  tidy(() => void auto.loadStateDict(base.stateDict()));
  after(() => {
    base.dispose();
    auto.dispose();
  });

  for (const c of CASES) {
    test(c.name, () => {
      manualSeed(5);
      const x = randn([c.ids.length, 3, SIZE, SIZE], { dtype: 'float64' });
      // auto runs first. In the first case (where it measures) both models hold the same state,
      // so its measurement must leave the model as one plain training step does. (Train-mode
      // outputs do not depend on the running statistics, which differ in later cases.)
      const viaAuto = step(auto, x, c.ids);
      const ref = step(base, x, c.ids, 'loop');
      assertSameStep(viaAuto, ref, 'auto');
      if (c === CASES[0]) {
        const bufs = new Map(base.namedBuffers());
        for (const [n, b] of auto.namedBuffers()) assertNear(b.toNumbers(), bufs.get(n)!.toNumbers(), RTOL, `auto: buffer ${n}`);
      }
      // The reference itself must carry information: every expert of a present task has a nonzero gradient.
      const present = new Set(c.ids);
      for (const [name, g] of ref.grads) {
        const t = factorTask(name);
        if (t === null || !present.has(t)) continue;
        assert.ok(g!.some((v) => v !== 0), `${name}: task ${t} present but zero gradient`);
      }
      for (const s of STRATEGIES) {
        const got = s === 'loop' ? ref : step(base, x, c.ids, s);
        assertSameStep(got, ref, s);
        // Absent tasks take no part: no factor gradient (the optimiser skips them, as their heads), no head gradient.
        for (let t = 0; t < TASKS.length; t++) {
          if (present.has(t)) continue;
          for (const [name, g] of got.grads) if (factorTask(name) === t) assert.equal(g, null, `${s}: ${name} of absent task ${t} got a gradient`);
          assert.equal(got.grads.get(`heads.${t}.weight`), null, `${s}: absent head ${t} got a gradient`);
        }
      }
      x.dispose();
    });
  }

  test('auto measured the batch shape once (train mode) and chose a candidate', () => {
    assert.deepEqual(auto.auto.measurements.map((m) => m.key), [`8x3x${SIZE}x${SIZE}:nchw:train`]);
    for (const m of auto.auto.measurements) assert.ok(STRATEGIES.includes(m.best), m.best);
  });
});

/** A plain ShuffleNetV2 with W0 + (alpha/r_t) reshape(B_t A_t) in every expert conv and head t (eval mode). */
function referenceModel(dm: DecompositionModel, t: number, rank: RankSpec): ImageClassifier {
  const m = createModel(MODEL, { numClasses: TASKS[t]!.classNames.length }).toDtype('float64').eval();
  tidy(() =>
    noGrad(() => {
      const src = dm.stateDict();
      const sd = new Map<string, Tensor>();
      for (const k of m.stateDict().keys()) {
        const a = src.get(k.replace(/weight$/, `expertA.task${t}`));
        if (k.startsWith('fc.')) sd.set(k, src.get(`heads.${t}.${k.slice(3)}`)!);
        else if (k.endsWith('.weight') && a) {
          const w0 = src.get(k)!;
          const b = src.get(k.replace(/weight$/, `expertB.task${t}`))!;
          sd.set(k, w0.add(mm(b, a).reshape(w0.shape).mul(ALPHA / rankOf(rank, t))));
        } else sd.set(k, src.get(k)!);
      }
      m.loadStateDict(sd);
    }),
  );
  return m;
}

for (const R of RANKS)
describe(`eval mode: per-sample reference and PEFT mixed-batch test, ${R.name}`, () => {
  const dm = build('fused', 'float64', 1, R.rank).eval();
  const refs = TASKS.map((_, t) => referenceModel(dm, t, R.rank));
  after(() => {
    dm.dispose();
    refs.forEach((r) => r.dispose());
  });
  const ids = [1, 2, 0, 0, 2, 1, 2];

  test('every strategy equals each sample alone through a plain model of its task', () => {
    manualSeed(6);
    tidy(() => {
      const x = randn([ids.length, 3, EVAL_SIZE, EVAL_SIZE], { dtype: 'float64' });
      // Per-sample reference, in the decomposition model's sorted order (stable by task).
      const expected = TASKS.map((_, t) =>
        ids.flatMap((id, b) => (id === t ? refs[t]!.forward(x.narrow(0, b, 1)).toNumbers() : [])),
      );
      for (const s of STRATEGIES) {
        const out = noGrad(() => dm.forwardTasks(x, ids, s));
        TASKS.forEach((_, t) => assertNear(out.logits[t]!.toNumbers(), expected[t]!, RTOL, `${s}: task ${t} vs per-sample reference`));
      }
    });
  });

  test('each task\'s rows of a mixed batch equal running that task\'s rows alone', () => {
    manualSeed(7);
    tidy(() => {
      const x = randn([ids.length, 3, EVAL_SIZE, EVAL_SIZE], { dtype: 'float64' });
      for (const s of STRATEGIES) {
        const mixed = noGrad(() => dm.forwardTasks(x, ids, s));
        for (let t = 0; t < TASKS.length; t++) {
          const rows = ids.flatMap((id, b) => (id === t ? [b] : []));
          const alone = noGrad(() => dm.forwardTasks(x.indexSelect(0, tensor(rows, [rows.length], { dtype: 'int64' })), rows.map(() => t), s));
          assert.deepEqual(alone.logits.map((l, u) => l !== null && u === t), TASKS.map((_, u) => u === t));
          assertNear(mixed.logits[t]!.toNumbers(), alone.logits[t]!.toNumbers(), RTOL, `${s}: task ${t} rows`);
        }
      }
    });
  });

  test('task ids must match the batch and the task count', () => {
    tidy(() => {
      const x = randn([3, 3, EVAL_SIZE, EVAL_SIZE], { dtype: 'float64' });
      assert.throws(() => dm.forwardTasks(x, [0, 1]), (e: Error) => e instanceof UserError && /2 task ids for a batch of 3/.test(e.message));
      assert.throws(() => dm.forwardTasks(x, [0, 1, 3]), (e: Error) => e instanceof UserError && /task id 3 out of range/.test(e.message));
    });
  });
});

// ---------------------------------------------------------------- single expert conv (train mode)

interface ConvCase {
  name: string;
  cin: number;
  cout: number;
  k: number;
  stride: number;
  padding: number;
  channelsLast: boolean;
}
const CONV_CASES: ConvCase[] = [
  { name: '1x1, NCHW', cin: 6, cout: 5, k: 1, stride: 1, padding: 0, channelsLast: false },
  { name: '1x1, channels_last (GEMM path)', cin: 6, cout: 5, k: 1, stride: 1, padding: 0, channelsLast: true },
  { name: '3x3 stride 2 (stem-like)', cin: 3, cout: 4, k: 3, stride: 2, padding: 1, channelsLast: false },
];
const COUNTS = [2, 0, 3]; // task 1 absent

function expertConv(c: ConvCase, seed: number, rank: RankSpec = RANK): ExpertConv2d {
  manualSeed(seed);
  const base = new Conv2d(c.cin, c.cout, c.k, { stride: c.stride, padding: c.padding, bias: false, dtype: 'float64' });
  const conv = new ExpertConv2d(base, { tasks: COUNTS.map((_, t) => ({ name: `task${t}`, rank: rankOf(rank, t), loraAlpha: ALPHA })) });
  noGrad(() => conv.getModule('expertB').parameters().forEach((b) => b.normal_(0, 0.5)));
  return conv;
}

describe('single ExpertConv2d, train mode: every strategy equals a per-sample loop (outputs and gradients)', () => {
  for (const c of CONV_CASES) for (const R of RANKS) {
    test(`${c.name}, ${R.name}`, () => {
      const conv = expertConv(c, 3, R.rank);
      const routing = new Routing(COUNTS);
      const n = routing.batchSize;
      const taskOf = COUNTS.flatMap((cnt, t) => new Array<number>(cnt).fill(t));
      const w0 = conv.getParameter('weight');
      const A = COUNTS.map((_, t) => conv.factors(t).a);
      const B = COUNTS.map((_, t) => conv.factors(t).b);
      // A task without rows gets no gradient, in the reference and in every strategy.
      const grads = (x: Tensor) => [x, w0, ...A, ...B].map((p) => p.grad?.toNumbers() ?? new Array<number>(p.numel).fill(0));
      const names = ['x', 'W0', ...A.map((_, t) => `A${t}`), ...B.map((_, t) => `B${t}`)];
      tidy(() => {
        const x0 = fixed([n, c.cin, 7, 7], 40);
        const g = fixed([n, c.cout, c.stride === 1 ? 7 : 4, c.stride === 1 ? 7 : 4], 41);
        const input = () => {
          const leaf = x0.clone().requiresGrad_(true);
          return { leaf, x: c.channelsLast ? leaf.contiguous('channels_last') : leaf };
        };
        // Reference: each sample alone, convolved with W0 + s reshape(B_t A_t) (autograd through A, B, W0).
        const r = input();
        const outs = taskOf.map((t, b) => {
          const w = w0.add(mm(B[t]!, A[t]!).reshape(w0.shape).mul(ALPHA / rankOf(R.rank, t)));
          return conv2d(r.x.narrow(0, b, 1), w, null, { stride: c.stride, padding: c.padding });
        });
        const yRef = cat(outs, 0);
        yRef.mul(g).sum().backward();
        const refGrads = grads(r.leaf);
        for (const s of STRATEGIES) {
          conv.zeroGrad();
          const q = input();
          const y = conv.forward(q.x, routing, s);
          assertNear(y.toNumbers(), yRef.toNumbers(), RTOL, `${s}: output`);
          y.mul(g).sum().backward();
          grads(q.leaf).forEach((gr, i) => assertNear(gr, refGrads[i]!, RTOL, `${s}: grad of ${names[i]}`));
          assert.equal(A[1]!.grad, null, `${s}: absent task's A got a gradient`);
          assert.equal(B[1]!.grad, null, `${s}: absent task's B got a gradient`);
        }
        conv.zeroGrad();
      });
      routing.dispose();
      conv.dispose();
    });
  }
});

describe('fused native op: gradients against central finite differences (float64)', () => {
  for (const c of CONV_CASES) {
    test(c.name, () => {
      const conv = expertConv(c, 4);
      const routing = new Routing(COUNTS);
      const fn = (x: Tensor, weight: Tensor, expertA: Tensor, expertB: Tensor): Tensor => {
        const w: ExpertWeights = {
          weight,
          expertA,
          expertB,
          scale: ALPHA / RANK,
          conv: { stride: [c.stride, c.stride], padding: [c.padding, c.padding], dilation: [1, 1] },
        };
        return RUN.fused(c.channelsLast ? x.contiguous('channels_last') : x, w, routing);
      };
      tidy(() => {
        const x = fixed([routing.batchSize, c.cin, 5, 5], 50);
        const w = conv.weights();
        const report = gradcheck(fn, [x, w.weight, w.expertA.detach(), w.expertB.detach()], { atol: 1e-7, rtol: 1e-6 });
        assert.ok(report.checked > x.numel, `checked ${report.checked} elements`);
      });
      routing.dispose();
      conv.dispose();
    });
  }
});

// In train mode, ~50 BatchNorms over batch statistics amplify float32 rounding (features differ
// by ~1e-4 between strategies, gradients by ~1e-3); with running statistics they agree to ~2e-7.
for (const R of RANKS)
test(`float32, eval mode: every strategy gives the same outputs as loop to 1e-5, ${R.name}`, () => {
  const dm = build('fused', 'float32', 1, R.rank).eval();
  const ids = [2, 0, 1, 2, 0, 1, 1, 2];
  manualSeed(8);
  tidy(() => {
    const x = randn([ids.length, 3, SIZE, SIZE]);
    const run = (s: Strategy) => {
      const out = noGrad(() => dm.forwardTasks(x, ids, s));
      return { features: out.features.toNumbers(), logits: out.logits.map((l) => l!.toNumbers()) };
    };
    const ref = run('loop');
    for (const s of STRATEGIES) {
      const got = run(s);
      assertNear(got.features, ref.features, 1e-5, `${s}: features`);
      ref.logits.forEach((l, t) => assertNear(got.logits[t]!, l, 1e-5, `${s}: logits of task ${t}`));
    }
  });
  dm.dispose();
});

test('every strategy, forward and backward inside tidy, leaves no tensor behind', () => {
  const c = CONV_CASES[2]!;
  const conv = expertConv(c, 5);
  const routing = new Routing(COUNTS);
  const x = fixed([routing.batchSize, c.cin, 7, 7], 60);
  for (const s of STRATEGIES) {
    const once = () => tidy(() => conv.forward(x, routing, s).pow(2).sum().backward());
    once(); // creates the gradients and the routing's task-id tensor
    const live = memory().liveTensors;
    for (let i = 0; i < 3; i++) once();
    assert.equal(memory().liveTensors, live, `${s} leaks`);
  }
  x.dispose();
  routing.dispose();
  conv.dispose();
});
