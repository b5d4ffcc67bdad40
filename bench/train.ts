// Training-step throughput of a model in lorkd against PyTorch eager in the same run.
import { performance } from 'node:perf_hooks';
import { createModel } from '../src/models/registry.js';
import { SGD } from '../src/optim/index.js';
import { randn, randint, tidy, noGrad, crossEntropy, setNumThreads, manualSeed } from '../src/tensor/index.js';
import { runPython } from './pytorch.js';
import { peakRssMb } from '../src/io/peak-rss.js';
import { median } from './rounds.js';
import { UserError } from '../src/tensor/errors.js';

export interface TrainBenchOptions {
  model: string;
  input: number;
  batch: number;
  classes?: number;
  threads?: number;
  format?: 'contiguous' | 'channels_last';
  steps?: number;
  warmup?: number;
  forwardOnly?: boolean;
  /** Skip the PyTorch side. */
  noTorch?: boolean;
  /** Timings per engine, alternating lorkd and PyTorch; the figures are the medians (default 1). */
  rounds?: number;
}

export interface TrainBenchResult {
  model: string;
  input: number;
  batch: number;
  format: string;
  threads: number;
  forward_only: boolean;
  lorkd_img_per_s: number;
  pytorch_img_per_s: number | null;
  ratio: number | null;
  lorkd_peak_rss_mb: number;
  pytorch_peak_rss_mb: number | null;
  rounds: number;
  /** Every round's img/s (the figures above are their medians). */
  lorkd_runs: number[];
  pytorch_runs: number[];
}

export function lorkdTrainStep(o: TrainBenchOptions): number {
  const classes = o.classes ?? 10;
  manualSeed(0);
  const m = createModel(o.model, { numClasses: classes });
  let x = randn([o.batch, 3, o.input, o.input]);
  const y = randint(0, classes, [o.batch]);
  if (o.format === 'channels_last') {
    m.toChannelsLast();
    const c = x.contiguous('channels_last');
    x.dispose();
    x = c;
  }
  const opt = new SGD(m.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
  m.train();
  const step = o.forwardOnly
    ? () => tidy(() => void noGrad(() => m.forward(x)))
    : () =>
        tidy(() => {
          opt.zeroGrad();
          crossEntropy(m.forward(x), y).backward();
          opt.step();
        });
  for (let i = 0; i < (o.warmup ?? 3); i++) step();
  const steps = o.steps ?? 10;
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  const dt = (performance.now() - t0) / 1000 / steps;
  m.dispose();
  x.dispose();
  y.dispose();
  return o.batch / dt;
}

export function benchTrain(o: TrainBenchOptions): TrainBenchResult {
  const threads = o.threads ?? 2;
  setNumThreads(threads);
  const format = o.format ?? 'channels_last';
  const rounds = o.rounds ?? 1;
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new UserError(`bench train: rounds must be a whole number >= 1, got ${rounds}`);
  const lorkdRuns: number[] = [];
  const pyRuns: number[] = [];
  let pyRss: number | null = null;
  for (let r = 0; r < rounds; r++) {
    lorkdRuns.push(lorkdTrainStep({ ...o, format }));
    if (o.noTorch) continue;
    const py = runPython<{ img_per_s: number; peak_rss_mb: number }>('train_step.py', {
      model: o.model, input: o.input, batch: o.batch, classes: o.classes ?? 10, threads, format,
      steps: o.steps ?? 10, warmup: o.warmup ?? 3, forward_only: !!o.forwardOnly,
    });
    if (py === null) break;
    pyRuns.push(py.img_per_s);
    pyRss = Math.max(pyRss ?? 0, py.peak_rss_mb);
  }
  const lorkd = median(lorkdRuns);
  const py = pyRuns.length > 0 ? median(pyRuns) : null;
  return {
    model: o.model, input: o.input, batch: o.batch, format, threads, forward_only: !!o.forwardOnly,
    lorkd_img_per_s: lorkd,
    pytorch_img_per_s: py,
    ratio: py ? lorkd / py : null,
    lorkd_peak_rss_mb: peakRssMb(),
    pytorch_peak_rss_mb: pyRss,
    rounds,
    lorkd_runs: lorkdRuns,
    pytorch_runs: pyRuns,
  };
}
