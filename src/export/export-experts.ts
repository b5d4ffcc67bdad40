// Exports fused experts of a decomposition model as expert files (one per task).
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import type { DecompositionModel } from '../lorkd/decomposition.js';
import { expertModel } from '../lorkd/deploy.js';
import { UserError } from '../tensor/errors.js';
import { saveExpertFile } from './expert-file.js';

export interface ExportOptions {
  input: number;
  mean: number[];
  std: number[];
  source?: Record<string, string>;
}

/** Writes task t's fused expert to `file`. */
export function exportExpert(dm: DecompositionModel, task: number | string, file: string, o: ExportOptions): string {
  const t = typeof task === 'string' ? dm.taskIndex(task) : task;
  const spec = dm.config.tasks[t]!;
  const model = expertModel(dm, t);
  try {
    try {
      mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    } catch (e) {
      throw new UserError(`cannot create the folder of ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    saveExpertFile(file, model, {
      model: dm.config.model, task: spec.name, classNames: spec.classNames, inputSize: o.input, channels: 3, resize: 'bilinear', mean: o.mean, std: o.std,
      source: { rank: String(spec.rank), tasks: String(dm.numTasks), ...o.source },
    });
    return file;
  } finally {
    model.dispose();
  }
}

/** Writes every task's expert into `dir` as <task>.safetensors. */
export function exportAllExperts(dm: DecompositionModel, dir: string, o: ExportOptions): string[] {
  return dm.config.tasks.map((t, i) => exportExpert(dm, i, path.join(dir, `${t.name}.safetensors`), o));
}
