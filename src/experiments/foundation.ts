// The foundation (teacher) model: one network over the union of the tasks with ONE unified head
// over all classes (global labels), as the paper's foundation models are.
import { createModel } from '../models/registry.js';
import type { ImageClassifier } from '../models/classifier.js';
import { SGD, CosineAnnealingLR } from '../optim/index.js';
import { crossEntropy, manualSeed, tidy, type Tensor } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { saveSafetensors, loadSafetensors } from '../io/safetensors.js';
import type { TaskSuite } from '../data/index.js';
import { parsePreprocessing, preprocessingMetadata, preprocessingOf } from '../data/preprocessing.js';
import { type DataOptions, loadSuite, trainLoader, evalLoader } from './data-options.js';
import { RunDir } from './run-dir.js';
import { checkMemory, estimateFoundation, suiteBytes } from './resources.js';
import { metaString, metaTasks } from '../io/metadata.js';
import { train, type TrainResult } from './trainer.js';
import { evalFoundation, meanOf } from './evaluate.js';
import type { Progress } from './progress.js';

export interface FoundationMeta {
  model: string;
  tasks: { name: string; classNames: string[] }[];
  input: number;
  mean: number[];
  std: number[];
}

export interface FoundationOptions extends DataOptions {
  /** Architecture (resnet50 as the paper, resnet18, or any registered model). */
  arch: string;
  epochs: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  /** Early stopping on validation accuracy (unified head). */
  patience?: number;
  /** safetensors with torchvision names: the user's own (pre)trained weights to start from. */
  init?: string;
  out: string;
  resume?: boolean;
  progress: Progress;
}

export const FOUNDATION_FILE = 'foundation.safetensors';

export function suiteMeta(suite: TaskSuite): FoundationMeta['tasks'] {
  return suite.tasks.map((t) => ({ name: t.name, classNames: t.classNames.slice() }));
}

/** Loads torchvision-named weights into `model`; a head of another size is left freshly initialised. */
export function loadInit(model: ImageClassifier, file: string, progress: Progress): void {
  const { tensors } = loadSafetensors(file);
  try {
    const fc = tensors.get('fc.weight');
    if (fc && fc.shape[0] !== model.numClasses) {
      progress.log(`[foundation] ${file}: head has ${fc.shape[0]} classes, the suite ${model.numClasses}: loading the backbone only`);
      for (const k of ['fc.weight', 'fc.bias']) tensors.get(k)?.dispose(), tensors.delete(k);
      const r = model.loadStateDict(tensors, { strict: false });
      const missing = r.missing.filter((k) => !k.startsWith('fc.'));
      if (missing.length || r.unexpected.length) throw new UserError(`${file}: missing ${missing.join(', ') || '-'}; unexpected ${r.unexpected.join(', ') || '-'}`);
    } else {
      model.loadStateDict(tensors);
    }
  } catch (e) {
    if (e instanceof UserError && !e.message.startsWith(file)) throw new UserError(`${file}: ${e.message}`);
    throw e;
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

export function saveFoundation(file: string, model: ImageClassifier, meta: FoundationMeta): void {
  tidy(() =>
    saveSafetensors(file, model.stateDict(), {
      lorkd_format: 'foundation',
      model: meta.model,
      tasks: JSON.stringify(meta.tasks),
      ...preprocessingMetadata(preprocessingOf({ input: meta.input, mean: meta.mean, std: meta.std })),
    }),
  );
}

export function loadFoundation(file: string): { model: ImageClassifier; meta: FoundationMeta } {
  const { tensors, metadata } = loadSafetensors(file);
  try {
    if (metadata.lorkd_format !== 'foundation') throw new UserError(`${file} is not a lorkd foundation model (no lorkd_format=foundation metadata)`);
    const pre = parsePreprocessing(metadata, file, { legacyDefaults: true });
    const meta: FoundationMeta = { model: metaString(metadata, 'model', file), tasks: metaTasks(metadata, 'tasks', file), input: pre.inputSize, mean: pre.mean, std: pre.std };
    const classes = meta.tasks.reduce((a, t) => a + t.classNames.length, 0);
    const model = createModel(meta.model, { numClasses: classes });
    try {
      model.loadStateDict(tensors);
    } catch (e) {
      throw new UserError(`${file}: ${(e as Error).message}`);
    }
    return { model, meta };
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

export interface FoundationRun {
  model: ImageClassifier;
  file: string;
  result: TrainResult;
  meta: FoundationMeta;
}

export async function trainFoundation(o: FoundationOptions): Promise<FoundationRun> {
  const suite = loadSuite(o);
  checkMemory(estimateFoundation({ arch: o.arch, classes: suite.totalClasses, batch: o.batch, input: o.input, dataBytes: suiteBytes(suite) }), 'this foundation run');
  const run = RunDir.open(o.out, { resume: o.resume, marker: 'foundation.ckpt.safetensors', outputs: ['foundation.best.safetensors', FOUNDATION_FILE] });
  manualSeed(o.seed);
  const model = createModel(o.arch, { numClasses: suite.totalClasses });
  if (o.init) loadInit(model, o.init, o.progress);
  if (o.channelsLast ?? true) model.toChannelsLast();
  const cl = o.channelsLast ?? true;
  const opt = new SGD(model.parameters(), { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay });
  const sched = new CosineAnnealingLR(opt, { tMax: Math.max(o.epochs, 1) });
  const loader = trainLoader(suite, o);
  const val = evalLoader(suite, o, 'val');
  const result = await train({
    name: 'foundation', run, model, optimizer: opt, scheduler: sched, loader, epochs: o.epochs, resume: !!o.resume, patience: o.patience, progress: o.progress,
    loss: (b) => crossEntropy(model.forward(cl ? b.images.contiguous('channels_last') : b.images), b.global) as Tensor,
    validate: () => meanOf(evalFoundation(model, suite, val, cl).unified, 'accuracy'),
  });
  opt.dispose();
  const meta: FoundationMeta = { model: o.arch, tasks: suiteMeta(suite), input: o.input, mean: [...(o.mean ?? [0.5, 0.5, 0.5])], std: [...(o.std ?? [0.5, 0.5, 0.5])] };
  const file = run.file(FOUNDATION_FILE);
  saveFoundation(file, model, meta);
  return { model, file, result, meta };
}
