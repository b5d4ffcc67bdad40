// Decomposition training (paper 3.3): the decomposition model learns from the frozen foundation
// model with L = (1/B) sum_b [CE(y_b, h_t(b)) + beta * alpha^2 * KL(teacher || student)].
//   --kd feature (released code): teacher pooled features -> trainable Linear -> softmax(./alpha)
//     against softmax(student pooled features / alpha).
//   --kd logits: teacher unified-head logits restricted to the sample's task classes against the
//     task head, both at temperature alpha.
//   --kd none: CE only.
import { Module } from '../nn/module.js';
import { Linear } from '../nn/linear.js';
import { DecompositionModel, type RoutedOutput } from '../lorkd/decomposition.js';
import type { Routing } from '../lorkd/routing.js';
import { saveDecomposition } from '../lorkd/checkpoint.js';
import type { StrategyOption } from '../lorkd/strategies.js';
import { SGD, CosineAnnealingLR } from '../optim/index.js';
import { type Tensor, noGrad, tidy, keep, crossEntropy, klDiv, logSoftmax, softmax, cat, manualSeed } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import type { SortedBatch, TaskSuite, Triple } from '../data/index.js';
import { type DataOptions, loadSuite, trainLoader, evalLoader } from './data-options.js';
import { RunDir } from './run-dir.js';
import { train, type TrainResult } from './trainer.js';
import { evalDecomposition, meanOf } from './evaluate.js';
import { loadFoundation, type FoundationMeta } from './foundation.js';
import type { ImageClassifier } from '../models/classifier.js';
import { checkTrainState } from './train-state.js';
import { teacherOutputs, type TeacherCache } from './teacher-cache.js';
import type { Progress } from './progress.js';

export type KdMode = 'feature' | 'logits' | 'none';

export interface DecomposeOptions extends DataOptions {
  /** The foundation model file (lorkd foundation output). */
  foundation: string;
  model: string;
  rank: number;
  loraAlpha?: number;
  /** Temperature alpha (paper 10) and KD weight beta (paper 1). */
  alpha: number;
  beta: number;
  kd: KdMode;
  strategy: StrategyOption;
  epochs: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  patience?: number;
  out: string;
  resume?: boolean;
  progress: Progress;
}

export const DECOMPOSITION_FILE = 'decomposition.safetensors';
/** The resumable training checkpoint of a decomposition run (written by train()). */
const CHECKPOINT = 'decompose.ckpt.safetensors';

/** What the decomposition trainer checkpoints: the model and the KD projection. */
class Student extends Module {
  constructor(readonly dm: DecompositionModel, readonly projection: Linear | null) {
    super();
    this.registerModule('dm', dm);
    if (projection) this.registerModule('projection', projection);
  }
  forward(): Tensor {
    throw new Error('Student is a container');
  }
}

function checkTeacherTasks(meta: FoundationMeta, suite: TaskSuite, file: string): void {
  const mine = suite.tasks.map((t) => `${t.name}:${t.numClasses}`).join(',');
  const theirs = meta.tasks.map((t) => `${t.name}:${t.classNames.length}`).join(',');
  if (mine !== theirs) throw new UserError(`${file} was trained on tasks ${theirs}, not ${mine}`);
}

/** The KD term of a task-sorted batch (null for --kd none or beta 0); rows: its teacher-cache rows. */
export function kdLoss(o: { kd: KdMode; alpha: number; beta: number }, out: RoutedOutput, routing: Routing, rows: Tensor, cache: TeacherCache, projection: Linear | null, suite: TaskSuite): Tensor | null {
  if (o.kd === 'none' || o.beta === 0) return null;
  const B = routing.batchSize;
  const w = o.beta * o.alpha * o.alpha;
  if (o.kd === 'feature') {
    const teacher = projection!.forward(cache.features.indexSelect(0, rows)).div(o.alpha);
    return klDiv(logSoftmax(out.features.div(o.alpha), 1), softmax(teacher, 1), 'batchmean').mul(w);
  }
  const t = cache.logits.indexSelect(0, rows);
  const parts = out.logits.flatMap((l, k) => {
    if (!l) return [];
    const task = suite.tasks[k]!;
    const teacher = routing.slice(t, k).narrow(1, task.classOffset, task.numClasses).div(o.alpha);
    return [klDiv(logSoftmax(l.div(o.alpha), 1), softmax(teacher, 1), 'sum')];
  });
  return cat(parts.map((p) => p.reshape([1])), 0).sum().div(B).mul(w);
}

/** Mean over the batch of each row's cross-entropy under its own task's head. */
export function taskCrossEntropy(logits: (Tensor | null)[], local: Tensor, routing: Routing): Tensor {
  const parts = logits.flatMap((l, t) => (l ? [crossEntropy(l, routing.slice(local, t), { reduction: 'sum' }).reshape([1])] : []));
  return cat(parts, 0).sum().div(routing.batchSize);
}

/**
 * Teacher features, standardised per dimension over the training set, before the trainable
 * projection. A trained foundation's pooled (post-ReLU) features reach ~200; the KL gradient
 * through the projection is scaled by beta * alpha^2 = 100, and with raw features SGD at lr 0.05
 * diverged within a few steps (measured). Standardising conditions the projection's input and
 * leaves the method (KL between temperature softmaxes of projected teacher and student features)
 * as it is.
 */
export function standardise(features: Tensor): Tensor {
  const out = noGrad(() => tidy(() => features.sub(features.mean(0, true)).div(features.var(0, 0, true).add(1e-5).sqrt())));
  features.dispose();
  return keep(out);
}

export interface DecomposeRun {
  dm: DecompositionModel;
  file: string;
  result: TrainResult;
  suite: TaskSuite;
}

export async function trainDecomposition(o: DecomposeOptions): Promise<DecomposeRun> {
  const suite = loadSuite(o);
  // The inputs are checked before the run directory is created.
  let teacher: ImageClassifier | null = null;
  let meta: FoundationMeta | null = null;
  if (o.kd !== 'none' && o.beta !== 0) {
    const f = loadFoundation(o.foundation);
    teacher = f.model;
    meta = f.meta;
    if (o.kd === 'logits') checkTeacherTasks(f.meta, suite, o.foundation);
  }
  let run: RunDir;
  try {
    run = RunDir.open(o.out, { resume: o.resume, marker: CHECKPOINT });
  } catch (e) {
    teacher?.dispose();
    throw e;
  }
  const cl = o.channelsLast ?? true;
  const loader = trainLoader(suite, o);
  manualSeed(o.seed);
  const dm = new DecompositionModel({
    model: o.model, tasks: suite.tasks.map((t) => ({ name: t.name, classNames: t.classNames })), rank: o.rank, loraAlpha: o.loraAlpha, strategy: o.strategy,
  });
  if (cl) dm.toChannelsLast();
  const projection = o.kd === 'feature' && teacher ? new Linear(teacher.numFeatures, dm.numFeatures) : null;
  const student = new Student(dm, projection);
  // A resumed run whose checkpoint does not fit (other tasks, model or rank) fails here, before
  // the teacher outputs are computed and cached in the run directory.
  if (o.resume && run.has(CHECKPOINT)) checkTrainState(run.file(CHECKPOINT), student);
  let cache: TeacherCache | null = null;
  if (teacher) {
    if (cl) teacher.toChannelsLast();
    // The teacher sees each image through its own transform (input size, normalisation).
    const transform = { size: meta!.input, mean: meta!.mean as unknown as Triple, std: meta!.std as unknown as Triple };
    cache = teacherOutputs(teacher, o.foundation, loader, transform, run, o.progress, cl);
    teacher.dispose();
    if (o.kd === 'feature') cache = { ...cache, features: standardise(cache.features) };
  }
  const opt = new SGD(student.parameters(), { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay });
  const sched = new CosineAnnealingLR(opt, { tMax: Math.max(o.epochs, 1) });
  const val = evalLoader(suite, o, 'val');
  const loss = (b: SortedBatch): Tensor => {
    const out = dm.forwardRouted(b.images, b.routing);
    const ce = taskCrossEntropy(out.logits, b.local, b.routing);
    return cache ? ce.add(kdLoss(o, out, b.routing, b.teacherRows, cache, projection, suite)!) : ce;
  };
  const result = await train({
    name: 'decompose', run, model: student, optimizer: opt, scheduler: sched, loader, epochs: o.epochs, resume: !!o.resume, patience: o.patience, progress: o.progress,
    loss,
    validate: () => meanOf(evalDecomposition(dm, suite, val, cl), 'accuracy'),
  });
  for (const m of dm.auto.measurements) {
    const timings = Object.entries(m.ms).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', ');
    o.progress.log(`[decompose] EKS strategy for ${m.key}: ${m.best}${timings ? ` (measured: ${timings})` : ''}`);
  }
  opt.dispose();
  cache?.features.dispose();
  cache?.logits.dispose();
  projection?.dispose();
  const file = run.file(DECOMPOSITION_FILE);
  saveDecomposition(file, dm, { input_size: String(o.input), mean: JSON.stringify(o.mean ?? [0.5, 0.5, 0.5]), std: JSON.stringify(o.std ?? [0.5, 0.5, 0.5]), kd: o.kd });
  return { dm, file, result, suite };
}
