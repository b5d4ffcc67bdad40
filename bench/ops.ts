// Per-op dispatch overhead of the TypeScript binding against PyTorch eager (Python) in the same
// run, conv2d forward+backward time, and the optimiser step over ShuffleNetV2's ~170 parameters:
// one native call per group (SGD, AdamW) against PyTorch's foreach optimisers, and AdamW's
// per-tensor composed step (what lorkd ran before: ~6 crossings per parameter) to show what the
// crossings cost.
import { performance } from 'node:perf_hooks';
import { randn, relu, conv2d, setNumThreads, noGrad, tidy, randnLike, type Tensor } from '../src/tensor/index.js';
import { createModel } from '../src/models/index.js';
import { SGD, AdamW, type Optimizer, type OptimizerOptions } from '../src/optim/index.js';
import { runPython } from './pytorch.js';

/** Milliseconds per optimiser step over a model's parameters with fixed random gradients. */
function stepMs(make: (ps: Tensor[]) => Optimizer<OptimizerOptions> | null, composed: boolean, n: number): number {
  const model = createModel('shufflenet_v2_x1_0', { numClasses: 10 });
  const ps = model.parameters();
  for (const p of ps) p.grad = randnLike(p).mul(1e-3);
  const opt = make(ps);
  const m = ps.map((p) => randnLike(p).mul(0));
  const v = ps.map((p) => randnLike(p).mul(0));
  let t = 0;
  // AdamW's per-tensor step as composed TypeScript ops (six native calls per parameter).
  const composedStep = () =>
    noGrad(() =>
      tidy(() => {
        t++;
        ps.forEach((p, i) => {
          const g = p.grad!;
          p.mul_(1 - 1e-3 * 1e-2);
          m[i]!.mul_(0.9).add_(g, 0.1);
          v[i]!.mul_(0.999).addcmul_(g, g, 0.001);
          p.addcdiv_(m[i]!, v[i]!.sqrt().div(Math.sqrt(1 - 0.999 ** t)).add(1e-8), -(1e-3 / (1 - 0.9 ** t)));
        });
      }),
    );
  const step = composed ? composedStep : () => opt!.step();
  for (let i = 0; i < 3; i++) step();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) step();
  const ms = (performance.now() - t0) / n;
  opt?.dispose();
  [...m, ...v].forEach((x) => x.dispose());
  model.dispose();
  return ms;
}

function perCallUs(f: () => Tensor, n: number): number {
  for (let i = 0; i < Math.min(n, 200); i++) f().dispose();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) f().dispose();
  return ((performance.now() - t0) / n) * 1000;
}

export interface OpsBenchResult {
  op: string;
  lorkd: number;
  pytorch: number | null;
  ratio: number | null;
}

export function benchOps(o: { n?: number; threads?: number } = {}): OpsBenchResult[] {
  const threads = o.threads ?? 2;
  setNumThreads(threads);
  const n = o.n ?? 20000;
  const x = randn([4]);
  const y = randn([4]);
  const m = randn([8, 8]);
  const conv = { batch: 32, cin: 64, cout: 64, size: 28, steps: 10 };
  const inp = randn([conv.batch, conv.cin, conv.size, conv.size]).requiresGrad_();
  const w = randn([conv.cout, conv.cin, 3, 3]).requiresGrad_();
  const convStep = (): Tensor => {
    const out = conv2d(inp, w, null, { padding: 1 });
    const s = out.sum();
    s.backward();
    out.dispose();
    inp.grad = null;
    w.grad = null;
    return s;
  };
  const lorkd: Record<string, number> = {
    add_us: perCallUs(() => x.add(y), n),
    mul_scalar_us: perCallUs(() => x.mul(2), n),
    relu_us: perCallUs(() => relu(x), n),
    matmul_8_us: perCallUs(() => m.matmul(m), n),
    conv_fwd_bwd_ms: perCallUs(convStep, conv.steps) / 1000,
    sgd_step_ms: stepMs((ps) => new SGD(ps, { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 }), false, 20),
    adamw_step_ms: stepMs((ps) => new AdamW(ps, { lr: 1e-3 }), false, 20),
    adamw_step_composed_ms: stepMs(() => null, true, 20),
  };
  [x, y, m, inp, w].forEach((t) => t.dispose());
  const py = runPython<Record<string, number>>('ops.py', { threads, n, conv });
  return Object.entries(lorkd).map(([op, v]) => ({ op, lorkd: v, pytorch: py?.[op] ?? null, ratio: py?.[op] ? v / py[op]! : null }));
}
