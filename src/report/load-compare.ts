// A comparison directory from `lorkd compare`: DIR/compare.json (tasks, seeds, methods.<key>.{method,
// rank? (or ranks?: a rank per task), params_training, params_deployment, per_task.<task>.{accuracy, auc}, mean_accuracy,
// mean_auc, vs_lorkd?, runs} with {mean, ci95, runs} estimates, budget, wall_seconds) and the
// per-(method, seed) run folders (runs/<key>-s<seed>/result.json: the training history).
import { findMethodSpec, REFERENCE_METHOD } from '../experiments/methods/index.js';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../tensor/errors.js';
import { Fields, readJson, budgetText, type JsonObject } from './input.js';
import { emptyStudy, type CurvePoint, type MethodRow, type Study } from './study.js';
import { checkpointCurves, historyCurves } from './load-run.js';
import { parseTransfer } from './load-analysis.js';
import { countMethodFlops } from './flops.js';
import { rankSpecOf, taskExpertRows } from './task-experts.js';
import type { RankSpec } from '../lorkd/decomposition.js';

/** A key naming LoRKD at one rank when the entry has no rank field: lorkd-r4. */
const RANK_KEY = /^lorkd-r(\d+)$/;

function methodEntry(f: Fields, name: string, m: JsonObject, where: string, tasks: string[]): MethodRow {
  const per = f.obj(m.per_task, `${where}.per_task`);
  const per_task = tasks.map((t) => {
    const p = f.obj(per[t], `${where}.per_task.${t}`);
    return { task: t, accuracy: f.stat(p.accuracy, `${where}.per_task.${t}.accuracy`), auc: f.optStat(p.auc, `${where}.per_task.${t}.auc`), n: null };
  });
  return {
    name,
    params_training: f.optNum(m.params_training, `${where}.params_training`),
    params_deployment: f.optNum(m.params_deployment, `${where}.params_deployment`),
    flops_training: f.optNum(m.flops_training, `${where}.flops_training`),
    flops_deployment: f.optNum(m.flops_deployment, `${where}.flops_deployment`),
    per_task,
    mean_accuracy: f.stat(m.mean_accuracy, `${where}.mean_accuracy`),
    mean_auc: f.optStat(m.mean_auc, `${where}.mean_auc`),
  };
}

/** Training histories of a method's run folders (result.json's history, else the checkpoints'). */
function runCurves(root: string, key: string, runs: string[]): CurvePoint[] {
  return runs.flatMap((r) => {
    // The comparison folder may have moved since compare.json was written: then its runs/ beside it.
    const dir = [path.resolve(root, r), path.join(root, 'runs', path.basename(r))].find((d) => existsSync(d));
    if (!dir) return [];
    const series = path.basename(dir);
    const result = path.join(dir, 'result.json');
    if (existsSync(result)) {
      const f = new Fields(result);
      return historyCurves(f, f.obj(readJson(result), 'the file').history, series);
    }
    return checkpointCurves(dir, `${key}/`);
  });
}

export function loadCompare(dir: string, o: { flops?: boolean } = {}): Study {
  const root = path.resolve(dir);
  const file = path.join(root, 'compare.json');
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new UserError(`--compare ${dir}: no such directory`);
  if (!existsSync(file)) throw new UserError(`--compare ${dir}: no compare.json in ${root} (\`lorkd compare --out ${dir}\` writes it)`);
  const f = new Fields(file);
  const r: JsonObject = f.obj(readJson(file), 'the file');
  const study = emptyStudy('compare', root, `LoRKD study: ${path.basename(root)}`);
  study.tasks = f.strings(r.tasks, 'tasks');
  if (!study.tasks.length) f.fail('tasks', 'a non-empty list', r.tasks);
  study.seeds = f.arr(r.seeds, 'seeds').map((s, i) => f.num(s, `seeds[${i}]`));
  study.interval = study.seeds.length > 1 ? 'seeds' : 'none';
  const methods = f.obj(r.methods, 'methods');
  if (!Object.keys(methods).length) f.fail('methods', 'a non-empty object', methods);
  const kinds: { key: string; method: string; rank: RankSpec | null }[] = [];
  const budget = r.budget === undefined || r.budget === null ? null : f.obj(r.budget, 'budget');
  const input = budget ? f.optNum(budget.input, 'budget.input') : null;
  const model = budget && typeof budget.model === 'string' ? budget.model : 'shufflenet_v2_x1_0';
  for (const [key, v] of Object.entries(methods)) {
    const where = `methods.${key}`;
    const o = f.obj(v, where);
    const m = methodEntry(f, key, o, where, study.tasks);
    study.methods.push(m);
    const rank = f.optNum(o.rank, `${where}.rank`) ?? (RANK_KEY.test(key) ? Number(RANK_KEY.exec(key)![1]) : null);
    const perTask = rankSpecOf(f, o.ranks, `${where}.ranks`);
    kinds.push({ key, method: typeof o.method === 'string' ? o.method : key.replace(/-r\d+$/, ''), rank: perTask ?? rank });
    if (perTask) study.taskExperts.push(...taskExpertRows(f, `${where}.ranks`, key, { model, tasks: study.tasks, rank: perTask, input }));
    // Table 3: the ranks of a ranked method (LoRKD); a rank key without a method field is LoRKD's (older compare.json).
    if (rank !== null && findMethodSpec(typeof o.method === 'string' ? o.method : REFERENCE_METHOD)?.ranked) study.ranks.push({ rank, params_training: m.params_training, per_task: m.per_task, mean_accuracy: m.mean_accuracy });
    const vs = o.vs_lorkd ?? o.paired_vs_lorkd;
    if (vs !== undefined && vs !== null) {
      const per = f.obj(o.per_task, `${where}.per_task`);
      const perTask = study.tasks.map((t) => f.optStat(f.obj(per[t], `${where}.per_task.${t}`).vs_lorkd, `${where}.per_task.${t}.vs_lorkd`));
      study.paired.push({ method: key, diff: f.stat(vs, `${where}.vs_lorkd`), per_task: perTask });
    }
    const runs = o.runs === undefined || o.runs === null ? [] : f.strings(o.runs, `${where}.runs`);
    study.curves.push(...runCurves(root, key, runs));
  }
  study.ranks.sort((a, b) => a.rank - b.rank);
  if (r.transfer !== undefined && r.transfer !== null) study.transfer = parseTransfer(f, r.transfer, 'transfer');
  if (!study.curves.length && existsSync(path.join(root, 'runs'))) {
    for (const d of readdirSync(path.join(root, 'runs')).sort()) study.curves.push(...runCurves(root, d, [path.join('runs', d)]));
  }
  study.facts.push(['comparison', file], ['seeds', study.seeds.join(', ')], ['methods', Object.keys(methods).join(', ')]);
  if (budget) study.facts.push(['budget', budgetText(budget)]);
  if (o.flops !== false && input !== null && study.methods.every((m) => m.flops_training === null)) {
    const counted = countMethodFlops(kinds, { model, tasks: study.tasks.length, input });
    for (const m of study.methods) [m.flops_training, m.flops_deployment] = counted.get(m.name) ?? [null, null];
    study.flopsNote = `FLOPs counted here by tracing ${model} at ${input}x${input} (the comparison's input); the foundation's and KF's networks are not counted (–).`;
  }
  const wall = f.optNum(r.wall_seconds, 'wall_seconds');
  if (wall !== null) study.facts.push(['wall time', `${(wall / 60).toFixed(1)} min`]);
  return study;
}
