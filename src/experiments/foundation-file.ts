// The foundation model file: one network over the union of the tasks with ONE unified head over
// all classes (global labels), saved with its tasks and preprocessing record; torchvision-named
// initial weights (--init).
import { createModel } from '../models/registry.js';
import type { ImageClassifier } from '../models/classifier.js';
import { tidy } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { saveSafetensors, loadSafetensors } from '../io/safetensors.js';
import type { TaskSuite } from '../data/index.js';
import { parsePreprocessing, preprocessingMetadata, preprocessingOf } from '../data/preprocessing.js';
import { metaString, metaTasks } from '../io/metadata.js';
import type { Progress } from './progress.js';

export interface FoundationMeta {
  model: string;
  tasks: { name: string; classNames: string[] }[];
  input: number;
  mean: number[];
  std: number[];
}

export const FOUNDATION_FILE = 'foundation.safetensors';

export function suiteMeta(suite: TaskSuite): FoundationMeta['tasks'] {
  return suite.tasks.map((t) => ({ name: t.name, classNames: t.classNames.slice() }));
}

/** Loads torchvision-named weights into `model`; a head of another size is left freshly initialised. */
export function loadInit(model: ImageClassifier, file: string, progress: Progress): void {
  const tensors = model.fromTorchvision(loadSafetensors(file).tensors);
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

