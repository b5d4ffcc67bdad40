// Inference throughput on the same weights, measured in one run: lorkd's inference path
// (src/infer), PyTorch eager (torchvision's network, eval, torch.inference_mode(), its better
// memory format) and onnxruntime-node on the exported ONNX file; per model, input size, batch
// and thread count. Plus LoRKD's EKS pass (a T-task decomposition, inference path) against the
// fused expert's forward at the same batch. Random weights with calibrated BatchNorm statistics.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { manualSeed, noGrad, rand, randn, setNumThreads, tidy, type Tensor } from '../src/tensor/index.js';
import { createModel, type ImageClassifier } from '../src/models/index.js';
import { BatchNorm2d } from '../src/nn/index.js';
import type { Module } from '../src/nn/module.js';
import { expertToOnnx } from '../src/export/onnx/index.js';
import { saveSafetensors } from '../src/io/safetensors.js';
import { DecompositionModel } from '../src/lorkd/index.js';
import { Routing } from '../src/lorkd/routing.js';
import { expertModel } from '../src/lorkd/deploy.js';
import { InferencePlan } from '../src/infer/index.js';
import { runPython } from './pytorch.js';
import { median } from './rounds.js';

export interface InferBenchOptions {
  models: string[];
  inputs: number[];
  batches: number[];
  threads: number[];
  /** Each timing runs at least this long (default 1 s) and at least minReps batches. */
  seconds?: number;
  minReps?: number;
  torch?: boolean;
  ort?: boolean;
  /** Tasks of the EKS comparison (0: skip it; default 10). */
  eksTasks?: number;
  /**
   * Timings per engine and case, the engines alternating (default 1); rows report each engine's
   * median. On a shared host whose speed drifts (other tenants, invisible to /proc) alternating
   * rounds keep a ratio from comparing two engines timed at different moments.
   */
  rounds?: number;
  progress?: (line: string) => void;
}

export interface InferRow {
  model: string;
  input: number;
  batch: number;
  threads: number;
  lorkd_img_per_s: number;
  pytorch_img_per_s: number | null;
  pytorch_format: string | null;
  ort_img_per_s: number | null;
  lorkd_over_ort: number | null;
  lorkd_over_pytorch: number | null;
  /** Every round's img/s (the row's figures are their medians). */
  lorkd_runs: number[];
  ort_runs: number[] | null;
  /** Largest |lorkd - onnxruntime| logit on the timed batch (a check that both ran the same network). */
  max_logit_diff_ort: number | null;
}

export interface EksRow {
  model: string;
  tasks: number;
  input: number;
  batch: number;
  threads: number;
  eks_img_per_s: number;
  fused_img_per_s: number;
  /** EKS pass time over the fused expert's forward time (goal <= 1.15). */
  eks_time_over_fused: number;
}

const round = (v: number) => +v.toFixed(1);


async function perBatchMs(f: () => unknown, seconds: number, minReps: number): Promise<number> {
  await f();
  await f();
  let reps = 0;
  const t0 = performance.now();
  while (reps < minReps || performance.now() - t0 < seconds * 1000) {
    await f();
    reps++;
  }
  return (performance.now() - t0) / reps;
}

/** BatchNorm statistics calibrated on random images (one training-mode pass, momentum 1). */
function calibrate(m: Module, input: number, forward: (x: Tensor) => unknown): void {
  const momenta = m.modules().filter((b): b is BatchNorm2d => b instanceof BatchNorm2d);
  for (const b of momenta) b.momentum = 1;
  noGrad(() => tidy(() => void forward(rand([8, 3, input, input]).sub(0.5).div(0.25))));
  for (const b of momenta) b.momentum = 0.1;
  m.eval();
}

/** lorkd's img/s of a network through its inference plan on a channels_last batch. */
async function lorkdIps(model: Module, plan: InferencePlan, x: Tensor, forward: () => Tensor, seconds: number, minReps: number): Promise<number> {
  const ms = await perBatchMs(() => plan.run(() => tidy(() => void forward())), seconds, minReps);
  return (x.size(0) * 1000) / ms;
}

export async function benchInfer(o: InferBenchOptions): Promise<{ rows: InferRow[]; eks: EksRow[]; torch: string | null; rounds: number }> {
  const seconds = o.seconds ?? 1;
  const minReps = o.minReps ?? 3;
  const rounds = o.rounds ?? 1;
  const say = o.progress ?? (() => {});
  const classes = 10;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'lorkd-bench-infer-'));
  const rows: InferRow[] = [];
  const eks: EksRow[] = [];
  // The exported file has a fixed input side: one per (model, input).
  const models = new Map<string, { model: ImageClassifier; plan: InferencePlan; onnx: (input: number) => Uint8Array }>();
  try {
    const weights: Record<string, string> = {};
    for (const name of o.models) {
      manualSeed(0);
      const model = createModel(name, { numClasses: classes });
      calibrate(model, 64, (x) => model.train().forward(x));
      const file = path.join(tmp, `${name}.safetensors`);
      tidy(() => saveSafetensors(file, model.stateDict()));
      weights[name] = file;
      const meta = (inputSize: number) => ({ model: name, task: 'bench', classNames: Array.from({ length: classes }, (_, i) => `c${i}`), inputSize, channels: 3, resize: 'bilinear' as const, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
      models.set(name, { model, plan: InferencePlan.of(model), onnx: (input) => expertToOnnx(model, meta(input)) });
    }
    const cases = o.models.flatMap((model) => o.inputs.flatMap((input) => o.batches.flatMap((batch) => o.threads.map((threads) => ({ model, input, batch, threads })))));
    say(`PyTorch eager: ${cases.length} cases`);
    const py = o.torch === false ? null : runPython<{ rows: { model: string; input: number; batch: number; threads: number; img_per_s: number; format: string }[]; torch: string }>('infer.py', { weights, num_classes: classes, cases, min_s: seconds, min_reps: minReps }, 3_600_000);
    const sessions = new Map<string, ort.InferenceSession>();
    for (const [i, c] of cases.entries()) {
      const { model, plan, onnx } = models.get(c.model)!;
      setNumThreads(c.threads);
      const x = rand([c.batch, 3, c.input, c.input]);
      const xl = x.contiguous('channels_last');
      let session: ort.InferenceSession | null = null;
      let feed: Record<string, ort.Tensor> | null = null;
      if (o.ort !== false) {
        const key = `${c.model}:${c.input}:${c.threads}`;
        let s = sessions.get(key);
        if (!s) {
          s = await ort.InferenceSession.create(onnx(c.input), { intraOpNumThreads: c.threads, interOpNumThreads: 1 });
          sessions.set(key, s);
        }
        session = s;
        feed = { input: new ort.Tensor('float32', x.toArray() as Float32Array, x.shape) };
      }
      const lorkdRuns: number[] = [];
      const ortRuns: number[] = [];
      for (let r = 0; r < rounds; r++) {
        lorkdRuns.push(await lorkdIps(model, plan, xl, () => model.forward(xl), seconds, minReps));
        if (session && feed) ortRuns.push((c.batch * 1000) / (await perBatchMs(() => session.run(feed), seconds, minReps)));
      }
      const lorkd = median(lorkdRuns);
      const ortIps = session ? median(ortRuns) : null;
      let diff: number | null = null;
      if (session && feed) {
        const got = (await session.run(feed)).logits!.data as Float32Array;
        const ref = plan.run(() => tidy(() => model.forward(xl).toArray() as Float32Array));
        diff = ref.reduce((m, v, j) => Math.max(m, Math.abs(v - got[j]!)), 0);
      }
      x.dispose();
      xl.dispose();
      const p = py?.rows.find((r) => r.model === c.model && r.input === c.input && r.batch === c.batch && r.threads === c.threads) ?? null;
      rows.push({
        ...c,
        lorkd_img_per_s: round(lorkd),
        pytorch_img_per_s: p ? round(p.img_per_s) : null,
        pytorch_format: p?.format ?? null,
        ort_img_per_s: ortIps === null ? null : round(ortIps),
        lorkd_over_ort: ortIps === null ? null : +(lorkd / ortIps).toFixed(2),
        lorkd_over_pytorch: p ? +(lorkd / p.img_per_s).toFixed(2) : null,
        lorkd_runs: lorkdRuns.map(round),
        ort_runs: session ? ortRuns.map(round) : null,
        max_logit_diff_ort: diff,
      });
      say(`[${i + 1}/${cases.length}] ${c.model} ${c.input}px batch ${c.batch} ${c.threads}t: lorkd ${round(lorkd)} img/s, ort ${ortIps === null ? '-' : round(ortIps)}, pytorch ${p ? round(p.img_per_s) : '-'}`);
    }
    for (const s of sessions.values()) await s.release();
    if ((o.eksTasks ?? 10) > 0) eks.push(...(await benchEksPass(o, o.eksTasks ?? 10, seconds, minReps, rounds, say)));
    return { rows, eks, torch: py?.torch ?? null, rounds };
  } finally {
    for (const { model, plan } of models.values()) {
      plan.dispose();
      model.dispose();
    }
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The EKS pass of a T-task decomposition (rows spread over the tasks) vs task 0's fused expert, both inference paths. */
async function benchEksPass(o: InferBenchOptions, T: number, seconds: number, minReps: number, rounds: number, say: (l: string) => void): Promise<EksRow[]> {
  const name = 'shufflenet_v2_x1_0';
  manualSeed(0);
  const tasks = Array.from({ length: T }, (_, t) => ({ name: `task${t}`, classNames: ['a', 'b', 'c'] }));
  const dm = new DecompositionModel({ model: name, tasks, rank: 8, strategy: 'fused' });
  noGrad(() => {
    for (const [n, p] of dm.namedParameters()) if (/(^|\.)expertB(\.|$)/.test(n)) p.normal_(0, 0.02);
  });
  calibrate(dm, 64, (x) => dm.train().forwardRouted((x as Tensor).contiguous('channels_last'), new Routing([8, ...Array<number>(T - 1).fill(0)]), 'fused'));
  const fused = expertModel(dm, 0);
  fused.eval();
  const dmPlan = InferencePlan.of(dm);
  const fusedPlan = InferencePlan.of(fused);
  const out: EksRow[] = [];
  try {
    for (const input of o.inputs) {
      for (const batch of o.batches) {
        for (const threads of o.threads) {
          setNumThreads(threads);
          const counts = Array.from({ length: T }, (_, t) => Math.floor(batch / T) + (t < batch % T ? 1 : 0));
          const routing = new Routing(counts);
          const x = randn([batch, 3, input, input]).contiguous('channels_last');
          const eRuns: number[] = [];
          const fRuns: number[] = [];
          for (let r = 0; r < rounds; r++) {
            eRuns.push(await lorkdIps(dm, dmPlan, x, () => dm.forwardRouted(x, routing, 'fused').features, seconds, minReps));
            fRuns.push(await lorkdIps(fused, fusedPlan, x, () => fused.forward(x), seconds, minReps));
          }
          const e = median(eRuns);
          const f = median(fRuns);
          x.dispose();
          routing.dispose();
          out.push({ model: name, tasks: T, input, batch, threads, eks_img_per_s: round(e), fused_img_per_s: round(f), eks_time_over_fused: +(f / e).toFixed(2) });
          say(`EKS ${T} tasks ${input}px batch ${batch} ${threads}t: ${round(e)} img/s, fused expert ${round(f)} img/s`);
        }
      }
    }
  } finally {
    dmPlan.dispose();
    fusedPlan.dispose();
    fused.dispose();
    dm.dispose();
  }
  return out;
}
