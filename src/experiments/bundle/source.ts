// What a bundle is made of, read from a run directory (`lorkd export --format bundle --run DIR`):
//   a compare folder (compare.json): the method's (default lorkd) network of the first seed,
//     metrics as mean and 95% t interval over the seeds;
//   a method run (result.json): its deployed network, the run's test metrics (one seed);
//   a decompose/demo run (decomposition.safetensors): the task's fused expert, the test metrics of
//     results.json or eval-test.json when present.
// The base model is the teacher the run recorded, or the foundation file beside it.
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../../tensor/errors.js';
import { readDecomposition } from '../../lorkd/checkpoint.js';
import { parsePreprocessing } from '../../data/preprocessing.js';
import { exportExpert } from '../../export/export-experts.js';
import { loadSafetensors } from '../../io/safetensors.js';
import { estimate, type Estimate } from '../stats.js';
import { FOUNDATION_FILE } from '../foundation-file.js';
import { DECOMPOSITION_FILE, METHOD_RESULT, teacherRecord, type MethodResult, type TeacherRecord } from '../run-method.js';
import type { CompareResult } from '../compare.js';
import type { RunResults } from '../report.js';

export interface BundleMetrics {
  split: 'test';
  accuracy: Estimate;
  auc: Estimate;
  /** What the numbers are ("mean over seeds 0,1,2 of ...", "one run, seed 0"). */
  note: string;
}

export interface BundleSource {
  run: string;
  task: string;
  method: string;
  /** The tasks the network was trained with (it serves `task`). */
  tasks: string[];
  seeds: number[];
  metrics: BundleMetrics | null;
  base: TeacherRecord | null;
}

const readJson = <T>(file: string): T => {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw new UserError(`${file}: not readable JSON (${(e as Error).message.split('\n')[0]})`);
  }
};

function taskIndex(tasks: string[], task: string, where: string): number {
  const i = tasks.indexOf(task);
  if (i < 0) throw new UserError(`${where} has no task "${task}" (tasks: ${tasks.join(', ')})`);
  return i;
}

/** The foundation file's record (its architecture from its metadata), or null. */
function foundationRecord(file: string): TeacherRecord | null {
  if (!existsSync(file)) return null;
  return teacherRecord(file, loadSafetensors(file, { allowNonFinite: true }).metadata.model ?? 'unknown');
}

/** Copies a deployed network to `out` (a single network: KF's CKN + TSN pair is not one). */
function copyDeployed(file: string, out: string): void {
  if (!existsSync(file)) throw new UserError(`${file}: deployed network not found`);
  const format = loadSafetensors(file, { allowNonFinite: true }).metadata.lorkd_format;
  if (format !== 'expert') throw new UserError(`${file} is a ${format ?? 'non-lorkd'} file; a bundle holds one plain network (an expert file)`);
  mkdirSync(path.dirname(out), { recursive: true });
  copyFileSync(file, out);
}

function fromMethodRun(dir: string, task: string, out: string, r: MethodResult = readJson<MethodResult>(path.join(dir, METHOD_RESULT))): Omit<BundleSource, 'metrics'> & { result: MethodResult } {
  taskIndex(r.tasks, task, dir);
  copyDeployed(path.join(dir, 'deployed', `${task}.safetensors`), out);
  return { run: dir, task, method: r.method, tasks: r.tasks, seeds: [r.seed], base: r.teacher ?? null, result: r };
}

function fromCompare(dir: string, task: string, method: string, out: string): BundleSource {
  const c = readJson<CompareResult>(path.join(dir, 'compare.json'));
  const m = c.methods[method];
  if (!m) throw new UserError(`${dir}/compare.json has no method "${method}" (methods: ${Object.keys(c.methods).join(', ')})`);
  const per = m.per_task[task];
  if (!per) throw new UserError(`${dir}/compare.json has no task "${task}" (tasks: ${c.tasks.join(', ')})`);
  const first = fromMethodRun(m.runs[0]!, task, out);
  const base = first.base ?? foundationRecord(path.join(dir, 'runs', `foundation-s${c.seeds[0]}`, FOUNDATION_FILE));
  const note = `mean over seeds ${c.seeds.join(', ')} with 95% t intervals; this bundle's network is seed ${c.seeds[0]}'s`;
  return { ...first, base, seeds: c.seeds, metrics: { split: 'test', accuracy: per.accuracy, auc: per.auc, note } };
}

function fromDecomposition(dir: string, task: string, out: string): BundleSource {
  const file = path.join(dir, DECOMPOSITION_FILE);
  const { model: dm, metadata } = readDecomposition(file, { strategy: 'fused' });
  let tasks: string[];
  try {
    tasks = dm.config.tasks.map((t) => t.name);
    taskIndex(tasks, task, file);
    const pre = parsePreprocessing(metadata, file, { legacyDefaults: true });
    exportExpert(dm, task, out, { input: pre.inputSize, mean: pre.mean, std: pre.std, source: { decomposition: path.resolve(file) } });
  } finally {
    dm.dispose();
  }
  const results = ['results.json', 'eval-test.json'].map((f) => path.join(dir, f)).find((f) => existsSync(f));
  let metrics: BundleMetrics | null = null;
  if (results) {
    const r = readJson<RunResults>(results);
    const t = (r.lorkd.fused_experts ?? r.lorkd.per_task).find((x) => x.task === task);
    if (t) metrics = { split: 'test', accuracy: estimate([t.accuracy]), auc: estimate([t.auc]), note: `one run (${path.basename(results)}), ${t.n} test images` };
  }
  const seed = Number(metadata.seed ?? NaN);
  return { run: dir, task, method: 'lorkd', tasks, seeds: Number.isInteger(seed) ? [seed] : [], metrics, base: foundationRecord(path.join(dir, FOUNDATION_FILE)) };
}

/** Reads the run directory and writes the task's network to `out` (safetensors, expert format). */
export function bundleSource(dir: string, task: string, out: string, method = 'lorkd'): BundleSource {
  if (!existsSync(dir)) throw new UserError(`${dir}: run directory not found`);
  if (existsSync(path.join(dir, 'compare.json'))) return fromCompare(dir, task, method, out);
  if (existsSync(path.join(dir, METHOD_RESULT))) {
    const s = fromMethodRun(dir, task, out);
    const d = s.result.deployed[taskIndex(s.result.tasks, task, dir)]!;
    const { result: _r, ...rest } = s;
    return { ...rest, metrics: { split: 'test', accuracy: estimate([d.accuracy]), auc: estimate([d.auc]), note: `one run, seed ${s.result.seed}, ${d.n} test images` } };
  }
  if (existsSync(path.join(dir, DECOMPOSITION_FILE))) return fromDecomposition(dir, task, out);
  throw new UserError(`${dir} holds no compare.json, result.json or ${DECOMPOSITION_FILE}: not a lorkd run directory`);
}
