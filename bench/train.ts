// Training-step throughput of a model in lorkd against PyTorch eager in the same run.
import { performance } from 'node:perf_hooks';
import { createModel } from '../src/models/registry.js';
import { SGD } from '../src/optim/index.js';
import { randn, randint, tidy, noGrad, crossEntropy, setNumThreads, manualSeed } from '../src/tensor/index.js';
import { runPython } from './pytorch.js';
import { peakRssMb } from '../src/io/peak-rss.js';

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
  const lorkd = lorkdTrainStep({ ...o, format });
  const rss = peakRssMb();
  const py = o.noTorch
    ? null
    : runPython<{ img_per_s: number; peak_rss_mb: number }>('train_step.py', {
        model: o.model, input: o.input, batch: o.batch, classes: o.classes ?? 10, threads, format,
        steps: o.steps ?? 10, warmup: o.warmup ?? 3, forward_only: !!o.forwardOnly,
      });
  return {
    model: o.model, input: o.input, batch: o.batch, format, threads, forward_only: !!o.forwardOnly,
    lorkd_img_per_s: lorkd,
    pytorch_img_per_s: py?.img_per_s ?? null,
    ratio: py ? lorkd / py.img_per_s : null,
    lorkd_peak_rss_mb: rss,
    pytorch_peak_rss_mb: py?.peak_rss_mb ?? null,
  };
}
