// Expert ranks: one for every task (`8`) or one per task (`breastmnist=4,pneumoniamnist=8`).
import { UserError } from '../tensor/errors.js';
import { limit, limitHint } from '../io/limits.js';
import type { RankSpec } from './decomposition.js';

/** Parses `8` or `name=r,name=r` (the CLI's --rank); refuses anything else in one line. */
export function parseRankSpec(text: string, flag = '--rank'): RankSpec {
  const one = (s: string, what: string): number => {
    const r = /^\d+$/.test(s.trim()) ? Number(s.trim()) : NaN;
    if (!(Number.isInteger(r) && r >= 1)) throw new UserError(`${flag}: ${what} must be a positive integer, got "${s}"`);
    if (r > limit('rank')) throw new UserError(`${flag}: ${what} ${r} is over the limit (${limitHint('rank')})`);
    return r;
  };
  if (!text.includes('=')) return one(text, 'rank');
  const out: Record<string, number> = {};
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const name = part.slice(0, eq).trim();
    if (eq < 0 || name === '') throw new UserError(`${flag}: expected name=rank, got "${part}" (e.g. breastmnist=4,retinamnist=16)`);
    if (Object.hasOwn(out, name)) throw new UserError(`${flag}: task "${name}" given twice`);
    out[name] = one(part.slice(eq + 1), `rank of "${name}"`);
  }
  return out;
}

/** `--ranks`: `4,8,16`, or specs separated by ';' when one gives a rank per task (`8;a=4,b=16`). */
export function parseRankList(text: string, flag = '--ranks'): RankSpec[] {
  const parts = (text.includes('=') ? text.split(';') : text.split(',')).map((s) => s.trim()).filter(Boolean);
  if (!parts.length) throw new UserError(`${flag}: no rank given`);
  return parts.map((p) => parseRankSpec(p, flag));
}

/** The rank of task `name` under a spec (undefined when a map does not name it). */
export function rankFor(spec: RankSpec, name: string): number | undefined {
  return typeof spec === 'number' ? spec : spec[name];
}

/** The largest rank of a spec (memory estimates bound by it). */
export function maxRank(spec: RankSpec): number {
  return typeof spec === 'number' ? spec : Math.max(...Object.values(spec));
}

/** `8`, or `a=4,b=8` (report and file labels). */
export function rankLabel(spec: RankSpec): string {
  return typeof spec === 'number' ? String(spec) : Object.entries(spec).map(([n, r]) => `${n}=${r}`).join(',');
}

/** The ranks of `names` under a spec; refuses a name a map lacks. */
export function ranksOf(spec: RankSpec, names: readonly string[]): number[] {
  return names.map((n) => {
    const r = rankFor(spec, n);
    if (r === undefined) throw new UserError(`no rank for task "${n}" in the rank map ${rankLabel(spec)}`);
    return r;
  });
}
