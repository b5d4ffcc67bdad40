// `lorkd bench decompose`: real decomposition training throughput (shuffled mixed-task batches of
// 128 at 64x64 from the bundled data, sorted by the loader, as `lorkd decompose --kd none`
// trains) against PyTorch eager doing the same work in the same run (bench/py/decompose.py: its
// best of the routed and gathered strategies, channels_last and NCHW), and against MTL (the same
// network without experts) on the same batches. --device/--precision run both sides on a GPU
// and/or under autocast (bench/gpu-check.sh: cuda, bf16, 224x224, batch 256, channels_last).
import { performance } from 'node:perf_hooks';
import { SGD } from '../src/optim/index.js';
import { tidy, manualSeed, setNumThreads, autocast, checkDevice, checkPrecision, synchronize, deviceType, type Precision } from '../src/tensor/index.js';
import { DataLoader, TaskSuite, type SortedBatch } from '../src/data/index.js';
import { DEFAULT_TASKS } from '../src/experiments/data-options.js';
import { contextTasks } from '../src/experiments/run-method.js';
import { createMethod } from '../src/experiments/methods/index.js';
import type { MethodContext } from '../src/experiments/methods/method.js';
import { runPython } from './pytorch.js';
import type { StrategyOption } from '../src/lorkd/strategies.js';

export interface DecomposeBenchOptions {
  batch?: number;
  input?: number;
  steps?: number;
  repeats?: number;
  rank?: number;
  threads?: number;
  /** LoRKD's EKS strategy (default auto, as lorkd decompose). */
  strategy?: StrategyOption;
  noTorch?: boolean;
  /** cpu (default), cuda, cuda:N: where both lorkd and PyTorch train. */
  device?: string;
  /** fp32 (default) or bf16 (autocast of the forward; fp16 needs the trainer's GradScaler, which this bench leaves out). */
  precision?: Precision;
  /** Skip the MTL comparison (the GPU check's time budget). */
  noMtl?: boolean;
}

export interface DecomposeBenchResult {
  batch: number;
  input: number;
  steps: number;
  threads: number;
  lorkd_img_per_s: number;
  lorkd_strategy: string;
  pytorch_img_per_s: number | null;
  pytorch_best: string | null;
  pytorch_configs: Record<string, number> | null;
  ratio: number | null;
  mtl_img_per_s: number | null;
  lorkd_over_mtl: number | null;
  device: string;
  precision: Precision;
}

/** Images per second of `method` training on `batches` (best of `repeats` passes after a warm-up step). */
function throughput(name: 'lorkd' | 'mtl', ctx: MethodContext, batches: SortedBatch[], repeats: number, device: string, precision: Precision): { imgPerS: number; describe: Record<string, string | number> } {
  manualSeed(0);
  const m = createMethod(name, ctx);
  m.module.to(device);
  const opt = new SGD(m.module.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 });
  const step = (b: SortedBatch) =>
    tidy(() => {
      opt.zeroGrad();
      m.backward(b, { forward: (fn) => autocast(device, precision, fn), backward: (loss) => loss.backward() });
      opt.step();
    });
  try {
    m.module.train();
    step(batches[0]!); // warm-up (and auto's measurement for LoRKD)
    let best = Infinity;
    for (let r = 0; r < repeats; r++) {
      synchronize(device);
      const t0 = performance.now();
      for (const b of batches) step(b);
      synchronize(device); // CUDA runs asynchronously: the time ends when the GPU is done
      best = Math.min(best, performance.now() - t0);
    }
    const images = batches.reduce((s, b) => s + b.size, 0);
    return { imgPerS: images / (best / 1000), describe: m.describe() };
  } finally {
    opt.dispose();
    m.dispose();
  }
}

export function benchDecompose(o: DecomposeBenchOptions = {}): DecomposeBenchResult {
  const batch = o.batch ?? 128;
  const input = o.input ?? 64;
  const steps = o.steps ?? 4;
  const repeats = o.repeats ?? 2;
  const threads = o.threads ?? 2;
  const device = checkDevice(o.device ?? 'cpu');
  const precision = o.precision ?? 'fp32';
  checkPrecision(device, precision);
  if (precision === 'fp16') throw new Error('bench decompose runs fp32 or bf16 (fp16 needs the GradScaler in the trainer)');
  setNumThreads(threads);
  const suite = TaskSuite.fromMedMnist(DEFAULT_TASKS);
  // The training loader's batches (as lorkd decompose's), made on the device.
  const loader = new DataLoader(suite, { split: 'train', batchSize: batch, seed: 0, flip: true, mergeSingleton: true, size: input, channelsLast: true, device });
  const batches: SortedBatch[] = [];
  for (const b of loader.epoch(0)) {
    if (b.size === batch && batches.length < steps) batches.push(b);
    else b.dispose();
  }
  try {
    const ctx: MethodContext = { tasks: contextTasks(suite), model: 'shufflenet_v2_x1_0', inChannels: 3, channelsLast: true, kd: null, rank: o.rank ?? 8, strategy: o.strategy ?? 'auto' };
    const lorkd = throughput('lorkd', ctx, batches, repeats, device, precision);
    const mtl = o.noMtl ? null : throughput('mtl', ctx, batches, repeats, device, precision);
    const py = o.noTorch
      ? null
      : runPython<{ img_per_s: number; best: string; configs: Record<string, number> }>('decompose.py', {
          threads, input, rank: o.rank ?? 8, repeats, classes: suite.tasks.map((t) => t.numClasses), counts: batches.map((b) => b.routing.counts),
          device, precision, formats: deviceType(device) === 'cuda' ? ['cl'] : ['cl', 'nchw'],
        });
    return {
      batch, input, steps: batches.length, threads,
      lorkd_img_per_s: lorkd.imgPerS, lorkd_strategy: String(lorkd.describe.strategy),
      pytorch_img_per_s: py?.img_per_s ?? null, pytorch_best: py?.best ?? null, pytorch_configs: py?.configs ?? null,
      ratio: py ? lorkd.imgPerS / py.img_per_s : null,
      mtl_img_per_s: mtl?.imgPerS ?? null, lorkd_over_mtl: mtl ? mtl.imgPerS / lorkd.imgPerS : null,
      device, precision,
    };
  } finally {
    batches.forEach((b) => b.dispose());
    void loader.close();
  }
}
