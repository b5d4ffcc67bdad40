// Per-op dispatch overhead of the TypeScript binding against PyTorch eager (Python) in the same
// run, and conv2d forward+backward time.
import { performance } from 'node:perf_hooks';
import { randn, relu, conv2d, setNumThreads, type Tensor } from '../src/tensor/index.js';
import { runPython } from './pytorch.js';

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
  };
  [x, y, m, inp, w].forEach((t) => t.dispose());
  const py = runPython<Record<string, number>>('ops.py', { threads, n, conv });
  return Object.entries(lorkd).map(([op, v]) => ({ op, lorkd: v, pytorch: py?.[op] ?? null, ratio: py?.[op] ? v / py[op]! : null }));
}
