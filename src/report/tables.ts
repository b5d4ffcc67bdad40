// The paper's tables from a study: Table 1 (methods x tasks), Table 2 (transfer), Table 3 (ranks),
// Table 4 (costs), the paired differences and MIG. Every number is formatted here, once.
import type { Stat } from './input.js';
import type { MethodRow, Study, TaskScore } from './study.js';
import { esc, htmlTable, type Cell } from './html.js';
import { methodLabel } from './labels.js';

export const pct = (x: number): string => (x * 100).toFixed(1);
export const millions = (n: number | null): string => (n === null ? '–' : (n / 1e6).toFixed(2));
export const giga = (n: number | null): string => (n === null ? '–' : (n / 1e9).toFixed(3));
export const ciText = (s: Stat, f: (x: number) => string = pct): string => (s.ci95 ? `${f(s.ci95[0])}–${f(s.ci95[1])}` : '');

/** A statistic's cell: the mean, its interval below in small type; bold when it is the column's best. */
function statCell(s: Stat | null, best = false, f: (x: number) => string = pct): Cell {
  if (!s) return '–';
  const ci = ciText(s, f);
  return { html: `${esc(f(s.mean))}${ci ? `<span class="ci">${esc(ci)}</span>` : ''}`, cls: best ? 'best' : '' };
}

/** The largest value of each column (ties all bold), or nothing with a single row. */
const bestOf = (xs: (number | null)[]) => (xs.filter((x) => x !== null).length > 1 ? Math.max(...xs.filter((x): x is number => x !== null)) : NaN);

const taskHeader = (t: string) => t.replace(/mnist$/i, 'MNIST').replace(/^./, (c) => c.toUpperCase());

export function table1(study: Study): string {
  const ms = study.methods;
  const bestTask = study.tasks.map((_, i) => bestOf(ms.map((m) => m.per_task[i]!.accuracy.mean)));
  const bestAvg = bestOf(ms.map((m) => m.mean_accuracy.mean));
  const bestAuc = bestOf(ms.map((m) => m.mean_auc?.mean ?? null));
  const rows: Cell[][] = ms.map((m) => [
    methodLabel(m.name),
    millions(m.params_training),
    ...m.per_task.map((p, i) => statCell(p.accuracy, p.accuracy.mean === bestTask[i])),
    statCell(m.mean_accuracy, m.mean_accuracy.mean === bestAvg),
    statCell(m.mean_auc, m.mean_auc?.mean === bestAuc, (x) => x.toFixed(3)),
  ]);
  return htmlTable('table1', ['Method', 'Params (M) training', ...study.tasks.map(taskHeader), 'Avg', 'AUC'], rows, 'Test accuracy (%) per task, the mean over the tasks (Avg) and the mean AUC; best in bold. Small type: the 95% interval.');
}

export function table2(study: Study): string {
  const cols = [...new Set(study.transfer.map((t) => t.downstream + (t.shots !== null ? ` (${t.shots}-shot)` : '')))];
  const methods = [...new Set(study.transfer.map((t) => t.method))];
  const key = (t: { downstream: string; shots: number | null }) => t.downstream + (t.shots !== null ? ` (${t.shots}-shot)` : '');
  const at = (m: string, c: string) => study.transfer.find((t) => t.method === m && key(t) === c) ?? null;
  const best = cols.map((c) => bestOf(methods.map((m) => at(m, c)?.accuracy.mean ?? null)));
  const params = methods.map((m) => study.transfer.find((t) => t.method === m && t.params_deployment !== null)?.params_deployment ?? null);
  const ratio = methods.map((m) => study.transfer.find((t) => t.method === m && t.compression !== null)?.compression ?? null);
  const showParams = params.some((p) => p !== null);
  const showRatio = ratio.some((r) => r !== null);
  const rows: Cell[][] = methods.map((m, i) => [
    methodLabel(m),
    ...(showParams ? [millions(params[i]!)] : []),
    ...(showRatio ? [ratio[i] === null ? '–' : ratio[i]!.toFixed(3)] : []),
    ...cols.map((c, j) => {
      const t = at(m, c);
      return t ? statCell(t.accuracy, t.accuracy.mean === best[j]) : '–';
    }),
  ]);
  const header = ['Starting network', ...(showParams ? ['Params (M) deployed'] : []), ...(showRatio ? ['Compression'] : []), ...cols];
  return htmlTable('table2', header, rows, 'Downstream test accuracy (%) after fine-tuning; compression = deployed parameters / the foundation\'s.');
}

export function table3(study: Study): string {
  const best = study.tasks.map((_, i) => bestOf(study.ranks.map((r) => r.per_task[i]?.accuracy.mean ?? null)));
  const bestAvg = bestOf(study.ranks.map((r) => r.mean_accuracy.mean));
  const rows: Cell[][] = study.ranks.map((r) => [
    `r = ${r.rank}`,
    millions(r.params_training),
    ...r.per_task.map((p: TaskScore, i) => statCell(p.accuracy, p.accuracy.mean === best[i])),
    statCell(r.mean_accuracy, r.mean_accuracy.mean === bestAvg),
  ]);
  return htmlTable('table3', ['Rank', 'Params (M) training', ...study.tasks.map(taskHeader), 'Avg'], rows, 'LoRKD at each expert rank: test accuracy (%) per task and on average.');
}

/** Small inputs give FLOPs far below 1 G: then in M, so that they still read. */
function flopsUnit(values: (number | null)[]): readonly ['M' | 'G', (n: number | null) => string] {
  const small = Math.max(0, ...values.map((v) => v ?? 0)) < 1e8;
  return small ? ['M', (n: number | null) => (n === null ? '–' : (n / 1e6).toFixed(2))] : ['G', giga];
}

/** Table 4's per-task rows: each task's experts where a decomposition gives each task its own rank. */
export function taskExpertsTable(study: Study): string {
  const [unit, fl] = flopsUnit(study.taskExperts.map((e) => e.flops_training));
  const rows: Cell[][] = study.taskExperts.map((e) => [methodLabel(e.method), e.task, String(e.rank), millions(e.params_experts), fl(e.flops_training)]);
  return htmlTable('table4-tasks', ['Method', 'Task', 'Rank', 'Params (M) of its experts', `FLOPs (${unit}) training, its rows`], rows, 'A rank per task: each task\'s experts (A and B in every expert convolution) and the multiply-accumulates per image of its rows in training (W0 and its experts); the same counts as lorkd params --rank name=r,...');
}

/** Table 4 as in the paper: one column per method, the four costs as rows. */
export function table4(study: Study, ms: MethodRow[] = study.methods.filter((m) => !m.name.includes('(task classes)'))): string {
  const row = (label: string, get: (m: MethodRow) => number | null, f: (n: number | null) => string): Cell[] => [label, ...ms.map((m) => f(get(m)))];
  const [unit, fl] = flopsUnit(ms.flatMap((m) => [m.flops_training, m.flops_deployment]));
  const rows = [
    row('Params (M) training', (m) => m.params_training, millions),
    row(`FLOPs (${unit}) training`, (m) => m.flops_training, fl),
    row('Params (M) deployment', (m) => m.params_deployment, millions),
    row(`FLOPs (${unit}) deployment`, (m) => m.flops_deployment, fl),
  ];
  return htmlTable('table4', ['Cost', ...ms.map((m) => methodLabel(m.name))], rows, 'Parameters (millions, without classification heads where the source counts the paper\'s way) and FLOPs (multiply-accumulates per image) of training and of one deployed network.');
}

const signed = (x: number) => (x >= 0 ? '+' : '') + pct(x);

/** A per-task difference: the mean, its interval in small type; bold when the interval excludes 0. */
function diffCell(d: Stat | null): Cell {
  if (!d) return '–';
  const beyond = !!d.ci95 && (d.ci95[0] > 0 || d.ci95[1] < 0);
  return { html: `${esc(signed(d.mean))}${d.ci95 ? `<span class="ci">${esc(`${signed(d.ci95[0])} to ${signed(d.ci95[1])}`)}</span>` : ''}`, cls: beyond ? 'best' : '' };
}

export function pairedTable(study: Study): string {
  // Per-task columns only where the comparison gave them (compare.json of an older build has the average only).
  const perTask = study.paired.some((p) => p.per_task.some((d) => d !== null));
  const rows: Cell[][] = study.paired.map((p) => {
    const [lo, hi] = p.diff.ci95 ?? [p.diff.mean, p.diff.mean];
    const verdict = !p.diff.ci95 ? 'one seed' : hi < 0 ? 'LoRKD better' : lo > 0 ? `${methodLabel(p.method)} better` : 'within the seeds\' noise';
    return [methodLabel(p.method), signed(p.diff.mean), p.diff.ci95 ? `${signed(lo)} to ${signed(hi)}` : '–', verdict, ...(perTask ? p.per_task.map(diffCell) : [])];
  });
  const caption = 'Per-seed difference of mean accuracy, method minus LoRKD.' + (perTask ? ' Per task: the same for each task\'s accuracy, its 95% interval in small type, bold where the interval excludes 0 (each at 95%, no correction for the number of comparisons).' : '');
  return htmlTable('paired-table', ['Method', 'Δ mean accuracy (points)', '95% interval', 'Reading', ...(perTask ? study.tasks.map(taskHeader) : [])], rows, caption);
}

export function migTable(study: Study): string {
  const factors = [...new Set(study.mig.flatMap((m) => Object.keys(m.factors)))];
  const rows: Cell[][] = study.mig.map((m) => [methodLabel(m.method), statCell(m.mig, false, (x) => x.toFixed(3)), ...factors.map((k) => (m.factors[k] === undefined ? '–' : m.factors[k]!.toFixed(3)))]);
  return htmlTable('mig-table', ['Method', 'MIG', ...factors], rows);
}
