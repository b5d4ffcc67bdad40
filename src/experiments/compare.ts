// `lorkd compare` (paper Table 1 on real data): every (method, seed) on the same suite and
// budget, each a resumable run in DIR/runs/<key>-s<seed>/ (a finished one is read, not retrained),
// then per method: params, per-task accuracy and AUC as mean and 95% t interval over seeds, the
// mean accuracy, and the paired per-seed difference of mean accuracy against LoRKD.
// The foundation of each seed is the teacher of that seed's KD runs (trained first, even when it
// is not listed); the teacher cache of a seed is shared by its runs (DIR/cache-s<seed>/). With
// --foundation FILE (a lorkd foundation or an ONNX model) that file is every seed's teacher
// (one cache, DIR/cache-teacher/), and the foundation method is trained only when listed.
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { UserError } from '../tensor/errors.js';
import { RunDir } from './run-dir.js';
import { runMethod, usesTeacher, type MethodResult, type MethodRunOptions } from './run-method.js';
import { FOUNDATION_FILE } from './foundation.js';
import { comparableMethods, methodName, methodSpec, REFERENCE_METHOD, TEACHER_METHOD, type MethodName } from './methods/index.js';
import { estimate, pairedDifference, type Estimate } from './stats.js';
import type { RankSpec } from '../lorkd/decomposition.js';

export interface CompareOptions extends Omit<MethodRunOptions, 'method' | 'out' | 'seed' | 'resume' | 'rank' | 'cacheDir'> {
  methods: MethodName[];
  seeds: number[];
  /**
   * LoRKD's ranks (Table 3), each one rank or a rank per task; the run at rank 8 (or the first) is
   * "lorkd", others "lorkd-r<r>" (a per-task map: "lorkd-r<task><r>-<task><r>...").
   */
  ranks: RankSpec[];
  out: string;
}

export interface MethodSummary {
  method: MethodName;
  rank?: number;
  /** A run with a rank per task. */
  ranks?: Record<string, number>;
  params_training: number;
  params_deployment: number;
  /** Per task; vs_lorkd: this task's accuracy minus LoRKD's on it, paired per seed (absent for LoRKD itself). */
  per_task: Record<string, { accuracy: Estimate; auc: Estimate; vs_lorkd?: Estimate }>;
  mean_accuracy: Estimate;
  mean_auc: Estimate;
  /** The deployed networks' mean accuracy (equal to the training-time model's, or its restricted one). */
  deployed_mean_accuracy: Estimate;
  /** Per seed: this method's mean accuracy minus LoRKD's, with its interval (absent for LoRKD itself). */
  vs_lorkd?: Estimate;
  /** Run directories, by seed. */
  runs: string[];
}

export interface CompareResult {
  tasks: string[];
  seeds: number[];
  methods: Record<string, MethodSummary>;
  budget: Record<string, unknown>;
  /** This invocation's wall time (a re-run that reads finished runs back takes seconds). */
  wall_seconds: number;
  /** The runs' own training seconds, summed (kept when they are read back): the comparison's cost. */
  run_seconds: number;
}

/** The methods of `--methods all|LIST`. */
export function parseMethods(text: string): MethodName[] {
  const names = text === 'all' ? comparableMethods() : text.split(',').map((s) => methodName(s.trim()));
  if (!names.length) throw new UserError('--methods needs at least one method');
  if (new Set(names).size !== names.length) throw new UserError(`--methods lists a method twice: ${text}`);
  return names;
}

interface Planned {
  key: string;
  method: MethodName;
  rank?: RankSpec;
  report: boolean;
}

function plan(o: CompareOptions): Planned[] {
  const main = o.ranks.includes(8) ? 8 : o.ranks[0]!;
  const keyOf = (r: RankSpec) => (typeof r === 'number' ? `r${r}` : `r${Object.entries(r).map(([n, k]) => `${n}${k}`).join('-')}`);
  const out: Planned[] = [];
  const needsTeacher = o.methods.some((m) => usesTeacher(m, o));
  if ((needsTeacher && !o.foundation) || o.methods.includes(TEACHER_METHOD)) out.push({ key: TEACHER_METHOD, method: TEACHER_METHOD, report: o.methods.includes(TEACHER_METHOD) });
  for (const m of o.methods) {
    if (m === TEACHER_METHOD) continue;
    if (!methodSpec(m).ranked) out.push({ key: m, method: m, report: true });
    else for (const r of o.ranks) out.push({ key: r === main ? m : `${m}-${keyOf(r)}`, method: m, rank: r, report: true });
  }
  return out;
}

export async function runCompare(o: CompareOptions): Promise<CompareResult> {
  if (!o.seeds.length) throw new UserError('--seeds needs at least one seed');
  if (new Set(o.seeds).size !== o.seeds.length) throw new UserError(`--seeds lists a seed twice: ${o.seeds.join(',')}`);
  const positive = (r: number) => Number.isInteger(r) && r >= 1;
  if (!o.ranks.length || o.ranks.some((r) => !(typeof r === 'number' ? positive(r) : Object.values(r).every(positive)))) throw new UserError('--ranks must be positive integers (or name=rank maps)');
  const t0 = performance.now();
  const root = RunDir.open(o.out, { resume: true, marker: '-' });
  const runs = plan(o);
  const results = new Map<string, MethodResult[]>();
  const dirs = new Map<string, string[]>();
  let done = 0;
  for (const seed of o.seeds) {
    for (const p of runs) {
      const dir = root.file(path.join('runs', `${p.key}-s${seed}`));
      o.progress.log(`[compare] ${++done}/${runs.length * o.seeds.length}: ${p.key}, seed ${seed}`);
      const { methods: _m, seeds: _s, ranks: _r, out: _o, ...base } = o;
      const r = await runMethod({
        ...base, method: p.method, seed, out: dir, resume: true, rank: p.rank ?? 8,
        ...(o.foundation
          ? { foundation: o.foundation, cacheDir: root.file('cache-teacher') }
          : { foundation: path.join(root.file(path.join('runs', `${TEACHER_METHOD}-s${seed}`)), FOUNDATION_FILE), cacheDir: root.file(`cache-s${seed}`) }),
      });
      if (!p.report) continue;
      results.set(p.key, [...(results.get(p.key) ?? []), r]);
      dirs.set(p.key, [...(dirs.get(p.key) ?? []), dir]);
    }
  }
  const tasks = [...results.values()][0]![0]!.tasks;
  const lorkd = results.get(REFERENCE_METHOD);
  const methods: Record<string, MethodSummary> = {};
  for (const p of runs) {
    const rs = results.get(p.key);
    if (!rs) continue;
    const per = (k: 'accuracy' | 'auc', i: number) => estimate(rs.map((r) => r.per_task[i]![k]));
    const paired = lorkd && p.key !== REFERENCE_METHOD;
    const taskVs = (i: number) => (paired ? { vs_lorkd: pairedDifference(rs.map((r) => r.per_task[i]!.accuracy), lorkd.map((r) => r.per_task[i]!.accuracy)) } : {});
    methods[p.key] = {
      method: p.method, ...(typeof p.rank === 'number' ? { rank: p.rank } : p.rank !== undefined ? { ranks: p.rank } : {}),
      params_training: rs[0]!.params_training, params_deployment: rs[0]!.params_deployment,
      per_task: Object.fromEntries(tasks.map((t, i) => [t, { accuracy: per('accuracy', i), auc: per('auc', i), ...taskVs(i) }])),
      mean_accuracy: estimate(rs.map((r) => r.mean_accuracy)),
      mean_auc: estimate(rs.map((r) => r.mean_auc)),
      deployed_mean_accuracy: estimate(rs.map((r) => r.deployed.reduce((a, d) => a + d.accuracy, 0) / r.deployed.length)),
      ...(paired ? { vs_lorkd: pairedDifference(rs.map((r) => r.mean_accuracy), lorkd.map((r) => r.mean_accuracy)) } : {}),
      runs: dirs.get(p.key)!,
    };
  }
  const budget = { epochs: o.epochs, input: o.input, batch: o.batch, lr: o.lr, momentum: o.momentum, weight_decay: o.weightDecay, kd: o.kd, alpha: o.alpha, beta: o.beta, ranks: o.ranks, model: o.model, foundation_arch: o.foundationArch ?? 'resnet18', ...(o.foundation ? { teacher: o.foundation } : {}), precision: o.precision ?? 'fp32', device: o.device ?? 'cpu' };
  const runSeconds = [...results.values()].flat().reduce((a, r) => a + r.seconds, 0);
  const result: CompareResult = { tasks, seeds: o.seeds.slice(), methods, budget, wall_seconds: (performance.now() - t0) / 1000, run_seconds: runSeconds };
  root.writeJson('compare.json', result);
  return result;
}

const pct = (x: number) => (100 * x).toFixed(1);
/** "mean [lo, hi]" in percent (no interval from one run). */
export function fmtEstimate(e: Estimate, scale = pct): string {
  return e.ci95 ? `${scale(e.mean)} [${scale(e.ci95[0])}, ${scale(e.ci95[1])}]` : scale(e.mean);
}

/** The Table-1-shaped rows: method, Params(M) training, per-task accuracy, average, AUC, difference to LoRKD. */
export function compareTable(r: CompareResult): { header: string[]; rows: string[][] } {
  const header = ['method', 'Params(M)', ...r.tasks.map((t) => `${t} acc %`), 'average acc %', 'AUC', 'vs LoRKD (pp)'];
  const rows = Object.entries(r.methods).map(([k, m]) => [
    k,
    (m.params_training / 1e6).toFixed(2),
    ...r.tasks.map((t) => fmtEstimate(m.per_task[t]!.accuracy)),
    fmtEstimate(m.mean_accuracy),
    fmtEstimate(m.mean_auc, (x) => x.toFixed(3)),
    m.vs_lorkd ? fmtEstimate(m.vs_lorkd, (x) => (x >= 0 ? '+' : '') + (100 * x).toFixed(1)) : '-',
  ]);
  return { header, rows };
}
