// A single run directory (`lorkd demo`, or `lorkd foundation` + `decompose` + `eval` with one
// --out): results.json or eval-<split>.json (experiments/report.ts's RunResults), the training
// history in every *.ckpt.safetensors (trainer.ts), the models' metadata for Table 4's FLOPs.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../tensor/errors.js';
import { Fields, readJson, safetensorsMetadata, budgetText, type Json, type JsonObject, type Stat } from './input.js';
import { emptyStudy, type CurvePoint, type MethodRow, type Study, type TaskScore } from './study.js';
import { wilson95, meanOf } from './stats.js';
import { countMethodFlops, countRunFlops, type RunFlops } from './flops.js';
import { taskExpertRows } from './task-experts.js';
import { parseRankSpec, rankLabel } from '../lorkd/ranks.js';
import type { RankSpec } from '../lorkd/decomposition.js';

const RESULT_FILES = ['results.json', 'eval-test.json', 'eval-val.json'];
/** One (method, seed) run of `lorkd compare` (run-method.ts's MethodResult). */
const METHOD_RESULT = 'result.json';

const single = (x: number, n: number | null): Stat => ({ mean: x, ci95: n ? wilson95(x, n) : null, runs: [x] });

function taskScores(f: Fields, v: Json | undefined, where: string, tasks: string[]): TaskScore[] {
  const rows = f.arr(v, where);
  if (rows.length !== tasks.length) f.fail(where, `one entry per task (${tasks.length})`, rows.length);
  return rows.map((r, i) => {
    const o = f.obj(r, `${where}[${i}]`);
    const n = f.optNum(o.n, `${where}[${i}].n`);
    return { task: tasks[i]!, accuracy: single(f.num(o.accuracy, `${where}[${i}].accuracy`), n), auc: single(f.num(o.auc, `${where}[${i}].auc`), null), n };
  });
}

function methodRow(name: string, per: TaskScore[], params: [number | null, number | null], flops: [number | null, number | null]): MethodRow {
  const acc = meanOf(per.map((p) => p.accuracy.mean));
  const n = per.reduce((a, p) => a + (p.n ?? 0), 0);
  // The mean of the tasks' accuracies: its binomial interval from the pooled variance of the parts.
  const se = Math.sqrt(per.reduce((a, p) => a + (p.n ? (p.accuracy.mean * (1 - p.accuracy.mean)) / p.n : NaN), 0)) / per.length;
  const ci: [number, number] | null = n && Number.isFinite(se) ? [acc - 1.959963984540054 * se, acc + 1.959963984540054 * se] : null;
  return {
    name, params_training: params[0], params_deployment: params[1], flops_training: flops[0], flops_deployment: flops[1], per_task: per,
    mean_accuracy: { mean: acc, ci95: ci, runs: [acc] }, mean_auc: single(meanOf(per.map((p) => p.auc!.mean)), null),
  };
}

/** The trainer's history (EpochRecord[]: epoch from 0, loss, val) as the points of one series. */
export function historyCurves(f: Fields, history: Json | undefined, series: string, where = 'history'): CurvePoint[] {
  return f.arr(history, where).map((h, i) => {
    const o = f.obj(h, `${where}[${i}]`);
    return { series, epoch: f.num(o.epoch, `${where}[${i}].epoch`) + 1, loss: f.num(o.loss, `${where}[${i}].loss`), val: f.optNum(o.val, `${where}[${i}].val`) };
  });
}

/** Training curves of every `<name>.ckpt.safetensors` in `dir` (series `prefix<name>`). */
export function checkpointCurves(dir: string, prefix = ''): CurvePoint[] {
  const out: CurvePoint[] = [];
  for (const e of readdirSync(dir).filter((e) => e.endsWith('.ckpt.safetensors')).sort()) {
    const file = path.join(dir, e);
    const meta = safetensorsMetadata(file);
    if (!meta?.extra) continue;
    const f = new Fields(file);
    let extra: Json;
    try {
      extra = JSON.parse(meta.extra) as Json;
    } catch {
      throw new UserError(`${file}: metadata "extra" is not JSON`);
    }
    const history = f.obj(extra, 'metadata extra').history;
    if (history === undefined) continue;
    out.push(...historyCurves(f, history, prefix + e.slice(0, -'.ckpt.safetensors'.length), 'extra.history'));
  }
  return out;
}

/** The decomposition's backbone, its largest rank and, where its tasks' ranks differ, the rank of each. */
function decompositionConfig(dir: string): { model: string; rank: number; ranks: RankSpec } | null {
  const file = path.join(dir, 'decomposition.safetensors');
  if (!existsSync(file)) return null;
  const meta = safetensorsMetadata(file);
  if (!meta?.config) return null;
  const f = new Fields(file);
  let c: JsonObject;
  try {
    c = f.obj(JSON.parse(meta.config) as Json, 'metadata config');
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${file}: metadata "config" is not JSON`);
  }
  const rank = f.num(c.rank, 'config.rank');
  // A task records its own rank only where it differs from the top-level one (lorkd/checkpoint.ts).
  const tasks = c.tasks === undefined ? [] : f.arr(c.tasks, 'config.tasks').map((t, i) => f.obj(t, `config.tasks[${i}]`));
  const own = tasks.map((t, i) => [f.str(t.name, `config.tasks[${i}].name`), f.optNum(t.rank, `config.tasks[${i}].rank`) ?? rank] as const);
  return { model: f.str(c.model, 'config.model'), rank, ranks: own.some(([, r]) => r !== rank) ? Object.fromEntries(own) : rank };
}

export interface RunLoadOptions {
  /** Count FLOPs by tracing the networks (native; default true). */
  flops?: boolean;
}

export function loadRun(dir: string, o: RunLoadOptions = {}): Study {
  const root = path.resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new UserError(`--run ${dir}: no such directory`);
  const study = emptyStudy('run', root, `LoRKD run: ${path.basename(root)}`);
  study.curves = checkpointCurves(root);
  const resultsName = RESULT_FILES.find((n) => existsSync(path.join(root, n)));
  if (!resultsName && existsSync(path.join(root, METHOD_RESULT))) {
    methodRun(study, path.join(root, METHOD_RESULT), o);
    return study;
  }
  if (!resultsName) {
    if (!study.curves.length) throw new UserError(`${root} holds no results.json, eval-test.json, result.json or training checkpoint (run \`lorkd demo --out ${dir}\` or \`lorkd eval --run ${dir}\`)`);
    study.notes.push(`no results.json or eval-test.json in ${root}: \`lorkd eval --run ${dir}\` writes the accuracy tables`);
    return study;
  }
  const file = path.join(root, resultsName);
  const f = new Fields(file);
  const r = f.obj(readJson(file), 'the file');
  const tasks = f.strings(r.tasks, 'tasks');
  if (!tasks.length) f.fail('tasks', 'a non-empty list', r.tasks);
  study.tasks = tasks;
  study.interval = 'binomial';
  study.seeds = [];
  const fo = f.obj(r.foundation, 'foundation');
  const lo = f.obj(r.lorkd, 'lorkd');
  const fParams = f.num(fo.params, 'foundation.params');
  const fModel = f.str(fo.model, 'foundation.model');
  const fInput = f.num(fo.input, 'foundation.input');
  const input = f.num(lo.input, 'lorkd.input');
  const cfg = decompositionConfig(root);
  let flops: RunFlops | null = null;
  if (o.flops !== false && cfg) {
    const classes = countClasses(root);
    if (classes) flops = countRunFlops({ foundationModel: fModel, foundationInput: fInput, foundationClasses: classes, model: cfg.model, tasks: tasks.length, rank: cfg.rank, input });
  }
  if (flops) study.flopsNote = `FLOPs counted by tracing the networks once: the foundation at ${fInput}x${fInput}, the experts at ${input}x${input}.`;
  const fFlops: [number | null, number | null] = [flops?.foundation ?? null, flops?.foundation ?? null];
  study.methods = [
    methodRow('foundation', taskScores(f, fo.unified, 'foundation.unified', tasks), [fParams, fParams], fFlops),
    methodRow('foundation (task classes)', taskScores(f, fo.restricted, 'foundation.restricted', tasks), [fParams, fParams], fFlops),
    methodRow('lorkd', taskScores(f, lo.per_task, 'lorkd.per_task', tasks), [f.num(lo.params_training, 'lorkd.params_training'), f.num(lo.params_expert, 'lorkd.params_expert')], [flops?.lorkd_training ?? null, flops?.lorkd_deployment ?? null]),
  ];
  if (cfg) study.taskExperts = taskExpertRows(f, 'decomposition.safetensors config.tasks', 'lorkd', { model: cfg.model, tasks, rank: cfg.ranks, input });
  study.facts.push(['results', file], ['split', f.str(r.split, 'split')], ['foundation', `${fModel} at ${fInput}x${fInput}`], ['experts', `${cfg?.model ?? 'shufflenet_v2_x1_0'}${cfg ? `, rank ${rankLabel(cfg.ranks)}` : ''}, at ${input}x${input}`]);
  if (r.budget !== undefined) {
    study.facts.push(['budget', budgetText(f.obj(r.budget, 'budget'))]);
  }
  if (r.experts !== undefined) study.facts.push(['exported experts', f.strings(r.experts, 'experts').map((e) => path.relative(root, e) || e).join(', ')]);
  return study;
}

/** The foundation's number of classes (its unified head), from foundation.safetensors' task list. */
function countClasses(root: string): number | null {
  const file = path.join(root, 'foundation.safetensors');
  if (!existsSync(file)) return null;
  const meta = safetensorsMetadata(file);
  if (!meta?.tasks) return null;
  try {
    const tasks = JSON.parse(meta.tasks) as { classNames: string[] }[];
    return tasks.reduce((a, t) => a + t.classNames.length, 0);
  } catch {
    throw new UserError(`${file}: metadata "tasks" is not JSON`);
  }
}

/** A compare run folder: the method's rows (and its restricted head's), its history, FLOPs at its input. */
function methodRun(study: Study, file: string, o: RunLoadOptions): void {
  const f = new Fields(file);
  const r = f.obj(readJson(file), 'the file');
  const tasks = f.strings(r.tasks, 'tasks');
  const method = f.str(r.method, 'method');
  const input = f.num(r.input, 'input');
  const describe = r.describe && typeof r.describe === 'object' && !Array.isArray(r.describe) ? r.describe : {};
  // describe() gives one rank as a number, a rank per task as its label (a=4,b=16).
  const rank = typeof describe.rank === 'number' ? describe.rank : typeof describe.rank === 'string' && describe.rank.includes('=') ? parseRankSpec(describe.rank, `${file}: describe.rank`) : null;
  const flops = o.flops === false ? undefined : countMethodFlops([{ key: method, method, rank }], { model: 'shufflenet_v2_x1_0', tasks: tasks.length, input }).get(method);
  if (rank !== null) study.taskExperts = taskExpertRows(f, 'describe.rank', method, { model: 'shufflenet_v2_x1_0', tasks, rank, input });
  const params: [number, number] = [f.num(r.params_training, 'params_training'), f.num(r.params_deployment, 'params_deployment')];
  study.tasks = tasks;
  study.interval = 'binomial';
  study.methods.push(methodRow(method, taskScores(f, r.per_task, 'per_task', tasks), params, flops ?? [null, null]));
  if (r.restricted) study.methods.push(methodRow(`${method} (task classes)`, taskScores(f, r.restricted, 'restricted', tasks), params, flops ?? [null, null]));
  if (r.history !== undefined) study.curves = historyCurves(f, r.history, method);
  if (flops) study.flopsNote = `FLOPs counted by tracing shufflenet_v2_x1_0 at ${input}x${input}.`;
  study.facts.push(['results', file], ['method', method], ['seed', String(r.seed ?? '–')], ['input', `${input}x${input}`], ['epochs', String(r.epochs ?? '–')], ['precision', typeof r.precision === 'string' ? r.precision : 'fp32'], ['device', typeof r.device === 'string' ? r.device : 'cpu']);
}
