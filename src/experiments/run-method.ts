// The one training path (docs/ARCHITECTURE.md, "Methods"): every command that trains a method of
// the registry (foundation, decompose, run, compare) builds it from its spec, gives it its teacher's
// cached outputs when it distils, and trains it with the one trainer (resumable after every epoch).
// `runMethod` then evaluates it and its deployed networks with the one evaluation path and writes
// each task's deployed network with its preprocessing record and one result.json in the one
// results schema. A finished run (result.json present) is not retrained.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { SGD, CosineAnnealingLR } from '../optim/index.js';
import { manualSeed, zeros, keep, autocast, checkDevice, checkPrecision, deviceType, type Precision, type Tensor } from '../tensor/index.js';
import { gpuMemoryBytes } from './gpu-memory.js';
import { UserError } from '../tensor/errors.js';
import type { ImageClassifier } from '../models/classifier.js';
import type { Module } from '../nn/module.js';
import type { TaskSuite } from '../data/index.js';
import { preprocessingMetadata, preprocessingOf } from '../data/preprocessing.js';
import type { StrategyOption } from '../lorkd/strategies.js';
import type { RankSpec } from '../lorkd/decomposition.js';
import { maxRank } from '../lorkd/ranks.js';
import { type DataOptions, loadSuite, trainLoader, evalLoader } from './data-options.js';
import { RunDir } from './run-dir.js';
import { train, type EpochRecord, type TrainResult, type DataParallel } from './trainer.js';
import { evalMethod, evalDeployed, meanOf, type TaskResult } from './evaluate.js';
import { loadInit, saveFoundation, suiteMeta, FOUNDATION_FILE } from './foundation-file.js';
import { teacherOutputs, type TeacherCache } from './teacher-cache.js';
import { DiskRows } from './teacher-rows.js';
import { tensorRows } from './methods/kd.js';
import type { RowTable } from './methods/method.js';
import { type Teacher, type TeacherFlags, checkTeacher, openTeacherFile } from './teacher/index.js';
import { saveDecomposition } from '../lorkd/checkpoint.js';
import { methodSpec, type Method, type MethodContext, type MethodName, type MethodSpec, type KdSettings } from './methods/index.js';
import type { KdContext } from './methods/kd.js';
import type { Progress } from './progress.js';
import { contextTasks } from './methods/context.js';
import { checkMemory, checkMemoryOn } from './resources.js';
import { checkTrainState } from './train-state.js';
import { checkRunSettings, runSettings } from './run-settings.js';

export { contextTasks };

export type KdMode = KdSettings['kd'];

/** LoRKD's trained decomposition in its run directory (its W0 backbone is the paper's dagger). */
export const DECOMPOSITION_FILE = 'decomposition.safetensors';

/** Where and how a run executes, given by the command (never read from globals). */
export interface Runtime {
  /** The device of the run's parameters and batches ('cpu', 'cuda', 'cuda:N'; a rank's own under launch). */
  device?: string;
  /** Autocast precision of training and evaluation forwards (fp32, bf16; fp16 on CUDA with loss scaling). */
  precision?: Precision;
  /** Data parallelism under `lorkd launch` (absent: one process). */
  dist?: (DataParallel & { sharedOut: string }) | null;
}

export interface MethodRunOptions extends DataOptions, Runtime {
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
  /** Also checkpoint every this many steps inside an epoch (default 0: at epochs' ends). */
  checkpointSteps?: number;
  /** The teacher (a lorkd foundation file, or an ONNX model) of the KD methods; LoRKD with --kd none needs none. */
  foundation?: string;
  /** An ONNX teacher's preprocessing (when its metadata does not state it) and output names. */
  teacher?: TeacherFlags;
  kd: KdMode;
  alpha: number;
  beta: number;
  rank?: RankSpec;
  loraAlpha?: number;
  strategy?: StrategyOption;
  /** Grow: the trained decomposition that learns the suite's tasks. */
  decomposition?: string;
  /** Where the teacher cache is kept (default: the run directory; compare shares one per seed). */
  cacheDir?: string;
  /** torchvision-named weights to start the networks from (the foundation's --init). */
  init?: string;
  resume: boolean;
  progress: Progress;
}

/** The files of one training stage in its run directory: `<name>.ckpt.safetensors`, `<name>.best.safetensors`, and what else it writes. */
export interface Stage {
  name: string;
  outputs: readonly string[];
  /** How messages name the run ("this decomposition run"; default: the method's name). */
  label?: string;
}

/** The one results schema of a method run (result.json). */
export interface MethodResult {
  method: MethodName;
  seed: number;
  tasks: string[];
  input: number;
  epochs: number;
  /** Autocast precision of training and evaluation (absent in results of earlier versions: fp32). */
  precision?: Precision;
  /** Where it ran (absent in results of earlier versions: cpu). */
  device?: string;
  /** The teacher it distilled from (absent: none, or a result of an earlier version). */
  teacher?: TeacherRecord;
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
const METHOD_STAGE: Stage = { name: 'method', outputs: [] };

/** Whether a run of this method with these options distils from the foundation. */
export function usesTeacher(name: MethodName, o: Pick<MethodRunOptions, 'kd' | 'beta'>): boolean {
  return methodSpec(name).teacher(o).length > 0;
}

/** The architecture a method's networks are built with. */
function archOf(spec: MethodSpec, o: Pick<MethodRunOptions, 'model' | 'foundationArch'>): string {
  return spec.arch === 'foundation' ? (o.foundationArch ?? 'resnet18') : o.model;
}

/**
 * The teacher, checked before the run directory is touched: a file is needed, and it must give
 * what the run distils from (feature KD: pooled features; logit KD: logits over the suite's classes).
 */
async function openTeacher(spec: MethodSpec, o: MethodRunOptions, suite: TaskSuite): Promise<Teacher | null> {
  const outputs = spec.teacher(o);
  if (!outputs.length) return null;
  const who = spec.teacherRequired ? `method ${spec.name}` : `--kd ${o.kd}`;
  if (!o.foundation) throw new UserError(`${who} distils from a foundation model: give --foundation FILE${spec.teacherRequired ? '' : ' (or --kd none)'}`);
  const t = await openTeacherFile(o.foundation, o.teacher ?? {}, suite.totalClasses, outputs);
  try {
    checkTeacher(t, outputs, suite, spec.teacherRequired ? spec.name : `${spec.name} --kd ${o.kd}`);
  } catch (e) {
    await t.dispose();
    throw e;
  }
  return t;
}

/**
 * The KD context of a run: the teacher's cached outputs (features standardised for feature KD; an
 * output it lacks, which the run does not use, empty). On the CPU the rows stay on disk and each
 * batch reads its own; on a GPU a cache that takes at most a quarter of its memory is loaded there.
 */
async function kdContext(o: MethodRunOptions, teacher: Teacher, suite: TaskSuite, run: RunDir): Promise<{ kd: KdContext; cache: TeacherCache }> {
  const device = o.device ?? 'cpu';
  teacher.place(device, o.channelsLast ?? true);
  const cacheRun = o.cacheDir ? RunDir.open(o.cacheDir, { resume: true, marker: '-' }) : run;
  const share = o.dist ? { group: o.dist.group, sharedOut: o.dist.sharedOut } : null;
  // The teacher runs once, in float32 (its outputs are the targets of every epoch, whatever the run's precision).
  const cache = await teacherOutputs(teacher, trainLoader(suite, o), cacheRun, o.progress, { share });
  const mode = o.kd === 'logits' ? 'logits' : 'feature';
  const features = (mode === 'feature' ? cache.standardised() : cache.features) ?? EMPTY_ROWS;
  const logits = cache.logits ?? EMPTY_ROWS;
  const widths = features.width + logits.width;
  const where = cachePlace(device, 2 * suite.split('train').n * widths, o.progress);
  const place = (t: RowTable): RowTable => (where === 'cpu' || !(t instanceof DiskRows) ? t : tensorRows(moveTo(t.all(), where)));
  return { kd: { mode, alpha: o.alpha, beta: o.beta, features: place(features), logits: place(logits) }, cache };
}

/** A table without rows (an output the teacher lacks and the run does not use). */
const EMPTY_ROWS: RowTable = { width: 0, rows: () => { throw new UserError('the teacher cache holds no such output'); }, dispose: () => {} };

/**
 * Where the teacher cache lives during training: on disk for a CPU run; on a GPU when it takes at
 * most a quarter of its memory (nvidia-smi's total; the rest is the model's), else on disk, from
 * which each batch's rows are read and copied over.
 */
function cachePlace(device: string, floats: number, progress: Progress): string {
  if (deviceType(device) === 'cpu') return 'cpu';
  const total = gpuMemoryBytes(device);
  const bytes = 4 * floats;
  const where = total !== null && bytes <= total / 4 ? device : 'cpu';
  progress.log(`[teacher] cache of ${(bytes / 2 ** 20).toFixed(0)} MiB kept on ${where === 'cpu' ? 'disk' : device}${total === null ? ' (GPU memory unknown: nvidia-smi did not answer)' : ''}`);
  return where;
}

/** The tensor on `device` (the same one when it is there already; else moved and the original freed). */
function moveTo(t: Tensor, device: string): Tensor {
  if (t.device === device) return keep(t);
  const moved = keep(t.to(device));
  t.dispose();
  return moved;
}

function methodContext(spec: MethodSpec, o: MethodRunOptions, suite: TaskSuite, kd: KdContext | null): MethodContext {
  return {
    tasks: contextTasks(suite), model: archOf(spec, o), inChannels: 3, channelsLast: o.channelsLast ?? true, kd,
    rank: o.rank, loraAlpha: o.loraAlpha, strategy: o.strategy, decomposition: o.decomposition, group: o.dist?.group ?? null,
  };
}

/** The teacher file of a run, as result.json records it (the model card's base model). */
export interface TeacherRecord {
  file: string;
  sha256: string;
  model: string;
}

export function teacherRecord(file: string, model: string): TeacherRecord {
  return { file: path.resolve(file), sha256: createHash('sha256').update(readFileSync(file)).digest('hex'), model };
}

/** A trained method with what it was trained on; the caller disposes it. */
export interface TrainedMethod {
  method: Method;
  teacher: TeacherRecord | null;
  spec: MethodSpec;
  suite: TaskSuite;
  run: RunDir;
  result: TrainResult;
  /** Frees the method and its teacher cache; `keep` (the method's module or one of its parts) stays alive for the caller. */
  dispose(o?: { keep?: Module }): void;
}

/** Builds a method from its spec, fills its teacher cache, trains it with the one trainer: the one training path. */
export async function trainMethod(o: MethodRunOptions, stage: Stage = METHOD_STAGE, opened?: { suite: TaskSuite; run: RunDir }): Promise<TrainedMethod> {
  const spec = methodSpec(o.method);
  const suite = opened?.suite ?? loadSuite(o);
  const arch = archOf(spec, o);
  const device = checkDevice(o.device ?? 'cpu');
  const mem = spec.memory?.({ suite, model: arch, batch: o.batch, input: o.input, rank: maxRank(o.rank ?? 8) });
  if (mem && deviceType(device) === 'cpu') checkMemory(mem, `this ${stage.label ?? spec.name} run`);
  else if (mem) checkMemoryOn(mem, `this ${stage.label ?? spec.name} run on ${device}`, gpuMemoryBytes(device));
  const ckpt = `${stage.name}.ckpt.safetensors`;
  if (o.init && spec.arch !== 'foundation') throw new UserError(`--init starts a foundation from torchvision weights; ${spec.name} does not take it`);
  const precision = o.precision ?? 'fp32';
  checkPrecision(device, precision);
  if (precision === 'fp16' && spec.backward === 'per-task') {
    throw new UserError(`${spec.name} rewrites the shared gradients from one backward per task, which fp16's loss scaling does not support: use --precision bf16`);
  }
  // The inputs are checked before the run directory is created.
  const teacher = await openTeacher(spec, o, suite);
  let kd: KdContext | null = null;
  let cache: TeacherCache | null = null;
  let method: Method | null = null;
  try {
    const run = opened?.run ?? RunDir.open(o.out, { resume: o.resume, marker: ckpt, outputs: [`${stage.name}.best.safetensors`, ...stage.outputs] });
    if (o.resume && run.has(ckpt)) {
      // A checkpoint that does not fit (other tasks, model or rank) fails here, before the teacher
      // outputs are computed: checked against the method built with stand-ins of the teacher's widths.
      const standIn: KdContext | null = teacher ? { mode: o.kd === 'logits' ? 'logits' : 'feature', alpha: o.alpha, beta: o.beta, features: tensorRows(zeros([1, teacher.numFeatures ?? 1])), logits: tensorRows(zeros([1, suite.totalClasses])) } : null;
      const probe = spec.create(methodContext(spec, o, suite, standIn));
      try {
        checkTrainState(run.file(ckpt), probe.module);
      } finally {
        probe.dispose();
        standIn?.features.dispose();
        standIn?.logits.dispose();
      }
    }
    if (teacher) ({ kd, cache } = await kdContext(o, teacher, suite, run));
    manualSeed(o.seed);
    method = spec.create(methodContext(spec, o, suite, kd));
    const m = method;
    if (o.init) loadInit(m.module as ImageClassifier, o.init, o.progress);
    m.module.to(device);
    const opt = new SGD(m.module.parameters(), { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay });
    const sched = new CosineAnnealingLR(opt, { tMax: Math.max(o.epochs, 1) });
    const shard = o.dist ? { rank: o.dist.group.rank, world: o.dist.group.worldSize } : undefined;
    const val = evalLoader(suite, o, 'val');
    const result = await train({
      name: stage.name, run, method: m, optimizer: opt, scheduler: sched, loader: trainLoader(suite, o, shard), epochs: o.epochs, resume: o.resume, patience: o.patience, checkpointSteps: o.checkpointSteps, progress: o.progress,
      dist: o.dist, device, precision, validate: () => meanOf(evalMethod(m, suite, val).perTask, 'accuracy'),
    });
    opt.dispose();
    for (const s of m.decomposition?.auto.measurements ?? []) {
      const timings = Object.entries(s.ms).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', ');
      o.progress.log(`[${stage.name}] EKS strategy for ${s.key}: ${s.best}${timings ? ` (measured: ${timings})` : ''}`);
    }
    const kdHeld = kd;
    const cacheHeld = cache as TeacherCache | null;
    return {
      method: m, teacher: teacher && teacherRecord(teacher.file, teacher.arch), spec, suite, run, result,
      dispose: (d) => {
        if (!d?.keep) m.dispose();
        else if (d.keep !== m.module) for (const [, c] of m.module.namedChildren()) if (c !== d.keep) c.dispose();
        kdHeld?.features.dispose();
        kdHeld?.logits.dispose();
        cacheHeld?.dispose();
      },
    };
  } catch (e) {
    method?.dispose();
    kd?.features.dispose();
    kd?.logits.dispose();
    (cache as TeacherCache | null)?.dispose();
    throw e;
  } finally {
    await teacher?.dispose();
  }
}

/** Keeps what a trained method is beside its deployed networks: the foundation file, LoRKD's decomposition (its W0 backbone is the dagger). */
export function saveTrainedFiles(t: TrainedMethod, o: MethodRunOptions, meta: Record<string, string> = {}): { foundation?: string; decomposition?: string } {
  const pre = preprocessingMetadata(preprocessingOf(o));
  const out: { foundation?: string; decomposition?: string } = {};
  if (t.method.decomposition) {
    out.decomposition = t.run.file(DECOMPOSITION_FILE);
    saveDecomposition(out.decomposition, t.method.decomposition, { ...pre, kd: o.kd, ...meta });
  }
  if (t.spec.arch === 'foundation' && t.method.unifiedHead) {
    out.foundation = t.run.file(FOUNDATION_FILE);
    saveFoundation(out.foundation, t.method.module as ImageClassifier, { model: archOf(t.spec, o), tasks: suiteMeta(t.suite), input: o.input, mean: [...(o.mean ?? [0.5, 0.5, 0.5])], std: [...(o.std ?? [0.5, 0.5, 0.5])] });
  }
  return out;
}

export async function runMethod(o: MethodRunOptions): Promise<MethodResult> {
  const spec = methodSpec(o.method);
  const name = spec.name;
  const suite = loadSuite(o);
  const run = RunDir.open(o.out, { resume: o.resume, marker: `${METHOD_STAGE.name}.ckpt.safetensors` });
  checkRunSettings(run, runSettings(name, o, usesTeacher(name, o)), o.resume, METHOD_RESULT);
  if (o.resume && run.has(METHOD_RESULT)) {
    o.progress.log(`[${name}] ${run.file(METHOD_RESULT)}: finished, not retrained`);
    return run.readJson<MethodResult>(METHOD_RESULT);
  }
  const t0 = performance.now();
  const cl = o.channelsLast ?? true;
  const t = await trainMethod(o, METHOD_STAGE, { suite, run });
  try {
    const m = t.method;
    const test = evalLoader(suite, o, 'test');
    const device = o.device ?? 'cpu';
    const ev = autocast(device, o.precision ?? 'fp32', () => evalMethod(m, suite, test));
    const deployed = autocast(device, o.precision ?? 'fp32', () => evalDeployed(m, suite, test, cl, device));
    const pre = preprocessingMetadata(preprocessingOf(o));
    mkdirSync(run.file('deployed'), { recursive: true });
    const files = suite.tasks.map((task, i) => {
      const net = m.deploy(i);
      try {
        const file = run.file(`deployed/${task.name}.safetensors`);
        net.save(file, { ...pre, source_method: name, source_seed: String(o.seed) });
        return file;
      } finally {
        net.dispose();
      }
    });
    saveTrainedFiles(t, o, { source_method: name, source_seed: String(o.seed) });
    const counts = m.params();
    const out: MethodResult = {
      method: name, seed: o.seed, tasks: suite.tasks.map((x) => x.name), input: o.input, epochs: o.epochs, precision: o.precision ?? 'fp32', device, ...(t.teacher ? { teacher: t.teacher } : {}), ...counts,
      per_task: ev.perTask, mean_accuracy: meanOf(ev.perTask, 'accuracy'), mean_auc: meanOf(ev.perTask, 'auc'), restricted: ev.restricted,
      deployed, deployed_files: files, best_epoch: t.result.bestEpoch, history: t.result.history, describe: m.describe(), seconds: (performance.now() - t0) / 1000,
    };
    run.writeJson(METHOD_RESULT, out);
    return out;
  } finally {
    t.dispose();
  }
}
