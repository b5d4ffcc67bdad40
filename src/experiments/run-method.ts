// One run of one method (docs/ARCHITECTURE.md, "Methods"): build it from the registry, train it
// with the one trainer (resumable after every epoch), evaluate it and its deployed networks with
// the one evaluation path, write each task's deployed network with its preprocessing record and
// one result.json in the one results schema. A finished run (result.json present) is not retrained.
import { mkdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { SGD, CosineAnnealingLR } from '../optim/index.js';
import { manualSeed } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import type { ImageClassifier } from '../models/classifier.js';
import type { TaskSuite, Triple } from '../data/index.js';
import { preprocessingMetadata, preprocessingOf } from '../data/preprocessing.js';
import type { StrategyOption } from '../lorkd/strategies.js';
import { type DataOptions, loadSuite, trainLoader, evalLoader } from './data-options.js';
import { RunDir } from './run-dir.js';
import { train, type EpochRecord } from './trainer.js';
import { evalMethod, evalDeployed, meanOf, type TaskResult } from './evaluate.js';
import { loadFoundation, saveFoundation, suiteMeta, FOUNDATION_FILE } from './foundation.js';
import { teacherOutputs } from './teacher-cache.js';
import { standardise, DECOMPOSITION_FILE } from './decompose.js';
import { saveDecomposition } from '../lorkd/checkpoint.js';
import { createMethod, methodName, KD_METHODS, type Method, type MethodContext, type MethodName } from './methods/index.js';
import type { Progress } from './progress.js';
import { contextTasks } from './methods/context.js';
import { checkRunSettings, runSettings } from './run-settings.js';

export { contextTasks };

import type { KdMode } from './decompose.js';

export type { KdMode };

export interface MethodRunOptions extends DataOptions {
  method: string;
  out: string;
  /** Backbone of every method but the foundation (shufflenet_v2_x1_0). */
  model: string;
  /** The foundation's architecture (resnet18 by default, as the demo). */
  foundationArch?: string;
  epochs: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  patience?: number;
  /** The teacher (a foundation model file) of the KD methods; LoRKD with --kd none needs none. */
  foundation?: string;
  kd: KdMode;
  alpha: number;
  beta: number;
  rank?: number;
  loraAlpha?: number;
  strategy?: StrategyOption;
  /** Where the teacher cache is kept (default: the run directory; compare shares one per seed). */
  cacheDir?: string;
  resume: boolean;
  progress: Progress;
}

/** The one results schema of a method run (result.json). */
export interface MethodResult {
  method: MethodName;
  seed: number;
  tasks: string[];
  input: number;
  epochs: number;
  params_training: number;
  params_deployment: number;
  /** Test split, the training-time model (the paper's accuracy; a unified head: argmax over all classes). */
  per_task: TaskResult[];
  mean_accuracy: number;
  mean_auc: number;
  /** A unified head only: restricted to the task's classes. */
  restricted: TaskResult[] | null;
  /** The deployed networks on the test split (equal to per_task, or to restricted for a unified head). */
  deployed: TaskResult[];
  deployed_files: string[];
  best_epoch: number;
  history: EpochRecord[];
  describe: Record<string, string | number>;
  seconds: number;
}

export const METHOD_RESULT = 'result.json';
const CHECKPOINT = 'method.ckpt.safetensors';

/** Whether a run of this method with these options distils from the foundation. */
export function usesTeacher(name: MethodName, o: Pick<MethodRunOptions, 'kd' | 'beta'>): boolean {
  if (KD_METHODS.includes(name)) return true;
  return name === 'lorkd' && o.kd !== 'none' && o.beta !== 0;
}

/** The teacher's cached outputs for the KD context (features standardised for feature KD). */
function teacherContext(o: MethodRunOptions, name: MethodName, suite: TaskSuite, run: RunDir): NonNullable<MethodContext['kd']> {
  if (!o.foundation) throw new UserError(`method ${name} distils from the foundation: give --foundation FILE${name === 'lorkd' ? ' (or --kd none)' : ''}`);
  const mode = o.kd === 'none' ? 'feature' : o.kd;
  const f = loadFoundation(o.foundation);
  try {
    const mine = suite.tasks.map((t) => `${t.name}:${t.numClasses}`).join(',');
    const theirs = f.meta.tasks.map((t) => `${t.name}:${t.classNames.length}`).join(',');
    if (mine !== theirs) throw new UserError(`${o.foundation} was trained on tasks ${theirs}, not ${mine}`);
    const cl = o.channelsLast ?? true;
    if (cl) f.model.toChannelsLast();
    const transform = { size: f.meta.input, mean: f.meta.mean as unknown as Triple, std: f.meta.std as unknown as Triple };
    const cache = teacherOutputs(f.model, o.foundation, trainLoader(suite, o), transform, o.cacheDir ? RunDir.open(o.cacheDir, { resume: true, marker: '-' }) : run, o.progress, cl);
    return { mode, alpha: o.alpha, beta: o.beta, features: mode === 'feature' ? standardise(cache.features) : cache.features, logits: cache.logits };
  } finally {
    f.model.dispose();
  }
}

export async function runMethod(o: MethodRunOptions): Promise<MethodResult> {
  const name = methodName(o.method);
  const suite = loadSuite(o);
  const run = RunDir.open(o.out, { resume: o.resume, marker: CHECKPOINT });
  checkRunSettings(run, runSettings(name, o, usesTeacher(name, o)), o.resume, METHOD_RESULT);
  if (o.resume && run.has(METHOD_RESULT)) {
    o.progress.log(`[${name}] ${run.file(METHOD_RESULT)}: finished, not retrained`);
    return run.readJson<MethodResult>(METHOD_RESULT);
  }
  const t0 = performance.now();
  const cl = o.channelsLast ?? true;
  const kd = usesTeacher(name, o) ? teacherContext(o, name, suite, run) : null;
  manualSeed(o.seed);
  const ctx: MethodContext = {
    tasks: contextTasks(suite), model: name === 'foundation' ? (o.foundationArch ?? 'resnet18') : o.model, inChannels: 3, channelsLast: cl, kd,
    rank: o.rank, loraAlpha: o.loraAlpha, strategy: o.strategy,
  };
  let method: Method | null = null;
  try {
    method = createMethod(name, ctx);
    const m = method;
    const opt = new SGD(m.module.parameters(), { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay });
    const sched = new CosineAnnealingLR(opt, { tMax: Math.max(o.epochs, 1) });
    const val = evalLoader(suite, o, 'val');
    const result = await train({
      name: 'method', run, model: m.module, optimizer: opt, scheduler: sched, loader: trainLoader(suite, o), epochs: o.epochs, resume: o.resume, patience: o.patience, progress: o.progress,
      backward: (b) => m.backward(b),
      validate: () => meanOf(evalMethod(m, suite, val).perTask, 'accuracy'),
    });
    opt.dispose();
    const test = evalLoader(suite, o, 'test');
    const ev = evalMethod(m, suite, test);
    const deployed = evalDeployed(m, suite, test, cl);
    const pre = preprocessingMetadata(preprocessingOf(o));
    mkdirSync(run.file('deployed'), { recursive: true });
    const files = suite.tasks.map((t, i) => {
      const net = m.deploy(i);
      try {
        const file = run.file(`deployed/${t.name}.safetensors`);
        net.save(file, { ...pre, source_method: name, source_seed: String(o.seed) });
        return file;
      } finally {
        net.dispose();
      }
    });
    // LoRKD also keeps its decomposition (shared W0 backbone + experts): the paper's dagger transfers from it.
    if (m.decomposition) saveDecomposition(run.file(DECOMPOSITION_FILE), m.decomposition, { ...pre, kd: o.kd, source_method: name, source_seed: String(o.seed) });
    if (name === 'foundation') {
      saveFoundation(run.file(FOUNDATION_FILE), m.module as ImageClassifier, { model: ctx.model, tasks: suiteMeta(suite), input: o.input, mean: [...(o.mean ?? [0.5, 0.5, 0.5])], std: [...(o.std ?? [0.5, 0.5, 0.5])] });
    }
    const counts = m.params();
    const out: MethodResult = {
      method: name, seed: o.seed, tasks: suite.tasks.map((t) => t.name), input: o.input, epochs: o.epochs, ...counts,
      per_task: ev.perTask, mean_accuracy: meanOf(ev.perTask, 'accuracy'), mean_auc: meanOf(ev.perTask, 'auc'), restricted: ev.restricted,
      deployed, deployed_files: files, best_epoch: result.bestEpoch, history: result.history, describe: m.describe(), seconds: (performance.now() - t0) / 1000,
    };
    run.writeJson(METHOD_RESULT, out);
    return out;
  } finally {
    method?.dispose();
    kd?.features.dispose();
    kd?.logits.dispose();
  }
}
