// Loading departments from the files lorkd writes: a decomposition checkpoint (every task, or one)
// or an expert file (one task; a folder of them for --experts). What is kept depends on the mode:
// `eks` keeps the unfused decomposition model only, `fused` one fused expert per department only,
// `auto` both (it chooses per batch). An --experts folder may hold ONNX experts (`lorkd export
// --format onnx`) too: each is served by onnxruntime-node (ort-expert.ts).
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { DECOMPOSITION_FORMAT, readDecomposition } from '../lorkd/checkpoint.js';
import { expertModel } from '../lorkd/deploy.js';
import { loadExpertFile } from '../export/expert-file.js';
import { fileFormat } from '../experiments/network-file.js';
import { UserError } from '../tensor/errors.js';
import { recordedPreprocessing } from '../data/preprocessing.js';
import { getNumThreads } from '../tensor/index.js';
import { OrtExpert } from './ort-expert.js';
import { SharedDecomposition, disposeSpec, type DepartmentSpec, type Preprocessing } from './departments.js';
import { joinRunning } from './join.js';

export const MODES = ['eks', 'fused', 'auto'] as const;
export type ServeMode = (typeof MODES)[number];

/** Preprocessing of checkpoints that do not record it (lorkd decompose records it). */
export interface PreprocessingDefaults {
  input?: number;
  mean?: number[];
  std?: number[];
}

/** The preprocessing a decomposition checkpoint recorded (input_size, mean, std metadata; `d` fills what it lacks). */
function checkpointPreprocessing(md: Record<string, string>, file: string, d: PreprocessingDefaults): Preprocessing {
  const { inputSize, mean, std } = recordedPreprocessing(md, file, d);
  return { inputSize, channels: 3, resize: 'bilinear', mean, std };
}

/**
 * Departments from a decomposition checkpoint: all its tasks, or `only` (checkpoint task name ->
 * department name). The shared model is released by the departments that hold it.
 */
export function decompositionDepartments(file: string, mode: ServeMode, d: PreprocessingDefaults = {}, only?: Map<string, string>): DepartmentSpec[] {
  const { model, config, metadata } = readDecomposition(file, { strategy: 'fused' });
  model.eval();
  const shared = new SharedDecomposition(model, file);
  try {
    const preprocessing = checkpointPreprocessing(metadata, file, d);
    const names = config.tasks.map((t) => t.name);
    for (const t of only?.keys() ?? []) if (!names.includes(t)) throw new UserError(`${file}: no task "${t}"; tasks: ${names.join(', ')}`);
    const specs: DepartmentSpec[] = [];
    try {
      config.tasks.forEach((t, index) => {
        if (only && !only.has(t.name)) return;
        const plain = mode !== 'eks' ? expertModel(model, index).eval() : undefined;
        if (mode !== 'fused') shared.acquire();
        specs.push({
          task: only?.get(t.name) ?? t.name,
          classNames: t.classNames,
          preprocessing,
          source: `${file}#${t.name}`,
          arch: `${config.model}@${preprocessing.inputSize}`,
          ...(mode !== 'fused' ? { eks: { shared, index } } : {}),
          ...(plain ? { plain } : {}),
        });
      });
    } catch (e) {
      specs.forEach(disposeSpec);
      throw e;
    }
    return specs;
  } finally {
    shared.release(); // the loader's reference: the departments hold their own from now on
  }
}

/** One department from an expert file (served by its own plain model in every mode). */
export function expertDepartment(file: string, name?: string): DepartmentSpec {
  const { model, meta } = loadExpertFile(file);
  return {
    task: name ?? meta.task,
    classNames: meta.classNames,
    preprocessing: { inputSize: meta.inputSize, channels: meta.channels, resize: meta.resize, mean: meta.mean, std: meta.std },
    source: file,
    arch: `${meta.model}@${meta.inputSize}`,
    plain: model,
  };
}

/**
 * One department from an ONNX expert (`lorkd export --format onnx`), run by onnxruntime-node with
 * as many intra-op threads as libtorch has (LORKD_NUM_THREADS), so both engines get the same CPUs.
 */
export async function onnxDepartment(file: string, name?: string): Promise<DepartmentSpec> {
  const ort = await OrtExpert.load(file, getNumThreads());
  const meta = ort.expert.meta;
  return {
    task: name ?? meta.task,
    classNames: meta.classNames,
    preprocessing: { inputSize: meta.inputSize, channels: meta.channels, resize: meta.resize, mean: meta.mean, std: meta.std },
    source: file,
    arch: `onnx:${meta.model}@${meta.inputSize}`,
    plain: ort,
  };
}

/** Every expert file in a folder, one department each: *.safetensors (lorkd's engine) and *.onnx (onnxruntime). */
export async function expertDirDepartments(dir: string): Promise<DepartmentSpec[]> {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => /\.(safetensors|onnx)$/.test(f) && statSync(path.join(dir, f)).isFile()).sort();
  } catch (e) {
    throw new UserError(`${dir}: cannot read the experts folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!files.length) throw new UserError(`${dir}: no expert files (*.safetensors or *.onnx)`);
  const specs: DepartmentSpec[] = [];
  try {
    for (const f of files) specs.push(f.endsWith('.onnx') ? await onnxDepartment(path.join(dir, f)) : expertDepartment(path.join(dir, f)));
  } catch (e) {
    specs.forEach(disposeSpec);
    throw e;
  }
  const dup = specs.find((s, i) => specs.findIndex((o) => o.task === s.task) !== i);
  if (dup) {
    specs.forEach(disposeSpec);
    throw new UserError(`${dir}: two expert files are for task "${dup.task}"`);
  }
  return specs;
}

/**
 * One department `name` from a file: an expert file, or task `task` (default `name`) of a
 * decomposition checkpoint (hot add/replace). A task of a grown decomposition whose shared part is
 * one of the `running` models' joins that model's EKS pass (serve/join.ts); otherwise the file is
 * loaded as a model of its own.
 */
export function departmentFromFile(file: string, name: string, mode: ServeMode, task?: string, d: PreprocessingDefaults = {}, running: SharedDecomposition[] = []): DepartmentSpec {
  if (fileFormat(file).format === DECOMPOSITION_FORMAT) {
    const joined = joinRunning(file, name, task ?? name, running, mode, (md) => checkpointPreprocessing(md, file, d));
    return joined ?? decompositionDepartments(file, mode, d, new Map([[task ?? name, name]]))[0]!;
  }
  if (task !== undefined) throw new UserError(`${file}: an expert file holds one task; "task" is only for decomposition checkpoints`);
  return expertDepartment(file, name);
}
