// Step time (forward + backward) of the decomposition model per EKS strategy, against a plain
// ShuffleNetV2 with the same per-task heads, on one batch of mixed tasks (channels_last).
import { performance } from 'node:perf_hooks';
import { createModel } from '../src/models/registry.js';
import { Linear } from '../src/nn/linear.js';
import { DecompositionModel } from '../src/lorkd/decomposition.js';
import { STRATEGIES, type Strategy } from '../src/lorkd/strategies.js';
import { Routing, sortByTask } from '../src/lorkd/routing.js';
import { type Tensor, randn, tidy, cat, crossEntropy, randint, manualSeed, setNumThreads } from '../src/tensor/index.js';

export interface EksBenchOptions {
  tasks: number;
  rank: number;
  batch: number;
  input: number;
  model?: string;
  steps?: number;
  strategies?: Strategy[];
  threads?: number;
}

export type EksBenchResult = Record<string, number | string | null> & { plain_ms: number; auto_over_plain: number; auto_choice: string };

function timeIt(fn: () => void, steps: number): number {
  fn();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) fn();
  return (performance.now() - t0) / steps;
}

export function benchEks(o: EksBenchOptions): EksBenchResult {
  setNumThreads(o.threads ?? 2);
  manualSeed(0);
  const model = o.model ?? 'shufflenet_v2_x1_0';
  const steps = o.steps ?? 5;
  const tasks = Array.from({ length: o.tasks }, (_, i) => ({ name: `t${i}`, classNames: ['a', 'b', 'c', 'd'] }));
  const x = randn([o.batch, 3, o.input, o.input]).contiguous('channels_last');
  // A mixed batch, already grouped by task (as a task-sorting loader yields it): both models see the same rows.
  const ids = Array.from({ length: o.batch }, (_, i) => Math.floor((i * o.tasks) / o.batch));
  const { counts } = sortByTask(ids, o.tasks);
  const offsets = counts.map((_, t) => counts.slice(0, t).reduce((a, b) => a + b, 0));
  const y = randint(0, 4, [o.batch]);
  const out: Record<string, number | string | null> = { model, tasks: o.tasks, rank: o.rank, batch: o.batch, input: o.input };

  // Plain ShuffleNetV2 with the same T heads (each sample through its own head).
  const plain = createModel(model, { numClasses: 4 }).toChannelsLast();
  const heads = tasks.map(() => new Linear(plain.numFeatures, 4));
  const plainStep = () =>
    tidy(() => {
      const f = plain.forwardFeatures(x);
      const logits = cat(heads.flatMap((h, t) => (counts[t] ? [h.forward(f.narrow(0, offsets[t]!, counts[t]!))] : [])), 0);
      crossEntropy(logits, y).backward();
    });
  out.plain_ms = timeIt(plainStep, steps);
  plain.dispose();
  heads.forEach((h) => h.dispose());

  const m = new DecompositionModel({ model, tasks, rank: o.rank, strategy: 'fused' }).toChannelsLast();
  const routing = new Routing(counts);
  const stepWith = (s: Strategy) =>
    tidy(() => {
      const r = m.forwardRouted(x, routing, s);
      crossEntropy(cat(r.logits.filter((l): l is Tensor => l !== null), 0), y).backward();
    });
  for (const s of o.strategies ?? [...STRATEGIES]) {
    out[`${s}_ms`] = timeIt(() => stepWith(s), s === 'aggregated' || s === 'loop' ? Math.max(1, Math.floor(steps / 3)) : steps);
    m.zeroGrad();
  }
  const choice = m.auto.pick(x, routing, true);
  routing.dispose();
  out.auto_choice = choice;
  out.auto_ms = out[`${choice}_ms`] as number;
  out.auto_over_plain = (out.auto_ms as number) / (out.plain_ms as number);
  for (const s of STRATEGIES) if (typeof out[`${s}_ms`] === 'number') out[`${s}_over_plain`] = (out[`${s}_ms`] as number) / (out.plain_ms as number);
  m.dispose();
  x.dispose();
  y.dispose();
  return out as EksBenchResult;
}
