// Decomposition training (paper 3.3): the decomposition model learns from the frozen foundation
// model with L = (1/B) sum_b [CE(y_b, h_t(b)) + beta * alpha^2 * KL(teacher || student)].
//   --kd feature (released code): teacher pooled features -> trainable Linear -> softmax(./alpha)
//     against softmax(student pooled features / alpha).
//   --kd logits: teacher unified-head logits restricted to the sample's task classes against the
//     task head, both at temperature alpha.
//   --kd none: CE only.
import { saveDecomposition } from '../lorkd/checkpoint.js';
import type { DecompositionModel } from '../lorkd/decomposition.js';
import type { StrategyOption } from '../lorkd/strategies.js';
import { SGD, CosineAnnealingLR } from '../optim/index.js';
import { type Tensor, noGrad, tidy, keep, zeros, manualSeed } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import type { TaskSuite, Triple } from '../data/index.js';
import { preprocessingMetadata, preprocessingOf } from '../data/preprocessing.js';
import { type DataOptions, loadSuite, trainLoader, evalLoader } from './data-options.js';
import { RunDir } from './run-dir.js';
import { checkMemory, estimateDecomposition, suiteBytes } from './resources.js';
import { train, type TrainResult } from './trainer.js';
import { evalDecomposition, meanOf } from './evaluate.js';
import { loadFoundation, type FoundationMeta } from './foundation.js';
import type { ImageClassifier } from '../models/classifier.js';
import { checkTrainState } from './train-state.js';
import { teacherOutputs } from './teacher-cache.js';
import type { Progress } from './progress.js';
import { createLorkd } from './methods/lorkd.js';
import type { KdContext } from './methods/kd.js';
import { contextTasks } from './methods/context.js';

export type KdMode = 'feature' | 'logits' | 'none';

export interface DecomposeOptions extends DataOptions {
  /** The foundation model file (lorkd foundation output); not needed with --kd none. */
  foundation?: string;
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

function checkTeacherTasks(meta: FoundationMeta, suite: TaskSuite, file: string): void {
  const mine = suite.tasks.map((t) => `${t.name}:${t.numClasses}`).join(',');
  const theirs = meta.tasks.map((t) => `${t.name}:${t.classNames.length}`).join(',');
  if (mine !== theirs) throw new UserError(`${file} was trained on tasks ${theirs}, not ${mine}`);
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

/** `lorkd decompose`: the LoRKD method (methods/lorkd.ts) trained by the one trainer, saved as a decomposition file. */
export async function trainDecomposition(o: DecomposeOptions): Promise<DecomposeRun> {
  const suite = loadSuite(o);
  checkMemory(
    estimateDecomposition({ model: o.model, classes: suite.tasks.map((t) => t.numClasses), rank: o.rank, batch: o.batch, input: o.input, dataBytes: suiteBytes(suite), trainImages: suite.split('train').n }),
    'this decomposition run',
  );
  // The inputs are checked before the run directory is created.
  let teacher: ImageClassifier | null = null;
  let meta: FoundationMeta | null = null;
  if (o.kd !== 'none' && o.beta !== 0) {
    if (!o.foundation) throw new UserError(`--kd ${o.kd} distils from a foundation model: give --foundation FILE (or --kd none)`);
    const f = loadFoundation(o.foundation);
    teacher = f.model;
    meta = f.meta;
    if (o.kd === 'logits') checkTeacherTasks(f.meta, suite, o.foundation);
  }
  let run: RunDir;
  try {
    run = RunDir.open(o.out, { resume: o.resume, marker: CHECKPOINT, outputs: ['decompose.best.safetensors', DECOMPOSITION_FILE, 'teacher-cache-*'] });
  } catch (e) {
    teacher?.dispose();
    throw e;
  }
  const cl = o.channelsLast ?? true;
  const loader = trainLoader(suite, o);
  // The teacher's outputs are computed after the checkpoint check below; until then the KD
  // context holds stand-ins of the right widths (the projection's shape follows from them).
  const kd: KdContext | null = teacher
    ? { mode: o.kd === 'logits' ? 'logits' : 'feature', alpha: o.alpha, beta: o.beta, features: zeros([1, teacher.numFeatures]), logits: zeros([1, suite.totalClasses]) }
    : null;
  manualSeed(o.seed);
  const method = createLorkd({ tasks: contextTasks(suite), model: o.model, inChannels: 3, channelsLast: cl, kd, rank: o.rank, loraAlpha: o.loraAlpha, strategy: o.strategy });
  const dm = method.dm;
  // A resumed run whose checkpoint does not fit (other tasks, model or rank) fails here, before
  // the teacher outputs are computed and cached in the run directory.
  if (o.resume && run.has(CHECKPOINT)) checkTrainState(run.file(CHECKPOINT), method.module);
  if (teacher && kd) {
    if (cl) teacher.toChannelsLast();
    // The teacher sees each image through its own transform (input size, normalisation).
    const transform = { size: meta!.input, mean: meta!.mean as unknown as Triple, std: meta!.std as unknown as Triple };
    const cache = teacherOutputs(teacher, o.foundation!, loader, transform, run, o.progress, cl);
    teacher.dispose();
    kd.features.dispose();
    kd.logits.dispose();
    kd.features = kd.mode === 'feature' ? standardise(cache.features) : cache.features;
    kd.logits = cache.logits;
  }
  const opt = new SGD(method.module.parameters(), { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay });
  const sched = new CosineAnnealingLR(opt, { tMax: Math.max(o.epochs, 1) });
  const val = evalLoader(suite, o, 'val');
  const result = await train({
    name: 'decompose', run, model: method.module, optimizer: opt, scheduler: sched, loader, epochs: o.epochs, resume: !!o.resume, patience: o.patience, progress: o.progress,
    backward: (b) => method.backward(b),
    validate: () => meanOf(evalDecomposition(dm, suite, val, cl), 'accuracy'),
  });
  for (const m of dm.auto.measurements) {
    const timings = Object.entries(m.ms).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', ');
    o.progress.log(`[decompose] EKS strategy for ${m.key}: ${m.best}${timings ? ` (measured: ${timings})` : ''}`);
  }
  opt.dispose();
  kd?.features.dispose();
  kd?.logits.dispose();
  method.projection?.dispose();
  const file = run.file(DECOMPOSITION_FILE);
  saveDecomposition(file, dm, { ...preprocessingMetadata(preprocessingOf(o)), kd: o.kd });
  return { dm, file, result, suite };
}
