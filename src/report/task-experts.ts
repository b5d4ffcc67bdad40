// Parameters and training FLOPs of each task's experts, where a decomposition gives each task its
// own rank (`--rank a=4,b=16`, `lorkd compare --ranks 'a=4,b=16'`): Table 4's per-task rows, the
// same counts as `lorkd params --rank a=4,b=16` (eval/complexity.ts).
import { complexity } from '../eval/complexity.js';
import type { RankSpec } from '../lorkd/decomposition.js';
import type { TaskExpertRow } from './study.js';
import type { Fields, Json } from './input.js';

/**
 * The rows of `method` (Table 1's key) over `tasks`: none for one rank for every task. A map that
 * misses a task fails in one line naming the file and the field (`where`).
 */
export function taskExpertRows(f: Fields, where: string, method: string, o: { model: string; tasks: string[]; rank: RankSpec; input: number | null }): TaskExpertRow[] {
  const spec = o.rank;
  if (typeof spec === 'number') return [];
  const ranks = o.tasks.map((t) => spec[t] ?? f.fail(where, `a rank for every task (${o.tasks.join(', ')})`, spec));
  const c = complexity({ model: o.model, tasks: o.tasks.length, rank: ranks, names: o.tasks, ...(o.input !== null ? { input: o.input } : {}) });
  return c.per_task.map((t) => ({ method, task: t.name, rank: t.rank, params_experts: t.params_experts, flops_training: o.input === null ? null : t.flops_training }));
}

/** A rank field of a source: one number, or a rank per task name; null when absent. */
export function rankSpecOf(f: Fields, v: Json | undefined, where: string): RankSpec | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'number') return f.num(v, where);
  const o = f.obj(v, where);
  return Object.fromEntries(Object.entries(o).map(([name, r]) => [name, f.num(r, `${where}.${name}`)]));
}
