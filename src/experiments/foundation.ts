// `lorkd foundation`: the foundation (teacher) model, one network over the union of the tasks with
// ONE unified head over all classes (global labels), as the paper's foundation models are, trained
// on the one training path (run-method.ts) and saved as a foundation file (foundation-file.ts).
import type { ImageClassifier } from '../models/classifier.js';
import type { DataOptions } from './data-options.js';
import type { TrainResult } from './trainer.js';
import type { Progress } from './progress.js';
import { trainMethod, saveTrainedFiles, type Runtime } from './run-method.js';
import { FOUNDATION_FILE, suiteMeta, type FoundationMeta } from './foundation-file.js';

export { FOUNDATION_FILE, suiteMeta, loadFoundation, saveFoundation, loadInit, type FoundationMeta } from './foundation-file.js';

export interface FoundationOptions extends DataOptions, Runtime {
  /** Architecture (resnet50 as the paper, resnet18, or any registered model). */
  arch: string;
  epochs: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  /** Early stopping on validation accuracy (unified head). */
  patience?: number;
  /** Also checkpoint every this many steps inside an epoch (default 0: at epochs' ends). */
  checkpointSteps?: number;
  /** safetensors with torchvision names: the user's own (pre)trained weights to start from. */
  init?: string;
  out: string;
  resume?: boolean;
  progress: Progress;
}

export interface FoundationRun {
  model: ImageClassifier;
  file: string;
  result: TrainResult;
  meta: FoundationMeta;
}

/** `lorkd foundation`: the foundation method trained on the one training path (run-method.ts), saved as a foundation file. */
export async function trainFoundation(o: FoundationOptions): Promise<FoundationRun> {
  const opts = { ...o, method: 'foundation', foundationArch: o.arch, model: o.arch, kd: 'none' as const, alpha: 0, beta: 0, resume: !!o.resume };
  const t = await trainMethod(opts, { name: 'foundation', label: 'foundation', outputs: [FOUNDATION_FILE] });
  const model = t.method.module as ImageClassifier;
  try {
    const file = saveTrainedFiles(t, opts).foundation!;
    const meta: FoundationMeta = { model: o.arch, tasks: suiteMeta(t.suite), input: o.input, mean: [...(o.mean ?? [0.5, 0.5, 0.5])], std: [...(o.std ?? [0.5, 0.5, 0.5])] };
    return { model, file, result: t.result, meta };
  } finally {
    t.dispose({ keep: model });
  }
}
