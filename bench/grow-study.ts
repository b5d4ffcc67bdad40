// The grow study (docs/GROW.md, README "Growing a decomposition"): on the bundled six-task suite,
// for each seed, at the same epochs,
//   base   lorkd run --method lorkd on the first five tasks,
//   grow   lorkd grow of the base with the sixth task,
//   joint  lorkd run --method lorkd on all six tasks (the retrain grow avoids),
//   stl    lorkd run --method stl on the sixth task alone;
// then the sixth task's test accuracy in grow, joint and stl (mean and 95% t interval over seeds),
// the wall time of grow against the joint retrain, and whether every tensor of the five old
// experts (W0, BatchNorm, experts, heads) is bit-identical in the grown file. Resumable: each run
// is a run directory under --out that lorkd continues or skips when finished; re-run the same
// command after an interruption. Writes OUT/grow-study.json and prints a table.
//   node dist/bench/grow-study.js --out DIR [--tasks med6] [--seeds 0,1,2] [--epochs 12] [--input 64] [--batch 128] [--rank 8]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expandTaskList } from '../src/data/bundled.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { estimate, type Estimate } from '../src/experiments/stats.js';
import { tidy } from '../src/tensor/index.js';

const arg = (name: string, d?: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  if (i > 0) return process.argv[i + 1]!;
  if (d === undefined) throw new Error(`give --${name}`);
  return d;
};
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = path.resolve(arg('out'));
const tasks = expandTaskList(arg('tasks', 'med6').split(','));
if (tasks.length < 2) throw new Error('--tasks needs at least two tasks (the last one is grown)');
const [old, fresh] = [tasks.slice(0, -1), tasks[tasks.length - 1]!];
const seeds = arg('seeds', '0,1,2').split(',').map(Number);
const budget = ['--epochs', arg('epochs', '12'), '--input', arg('input', '64'), '--batch', arg('batch', '128')];
/** LoRKD's own options (STL takes neither). */
const rank = ['--rank', arg('rank', '8'), '--strategy', arg('strategy', 'auto')];

interface Result {
  tasks: string[];
  per_task: { accuracy: number }[];
  seconds: number;
}

/** Runs one stage (skipped by lorkd itself when its result.json is there) and reads its result. */
function stage(name: string, dir: string, args: string[]): Result {
  const file = path.join(dir, 'result.json');
  if (!existsSync(file)) {
    process.stderr.write(`[grow-study] ${name}: ${args.join(' ')} (load ${loadavg().map((l) => l.toFixed(1)).join(' ')})\n`);
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'lorkd.js'), ...args, '--out', dir, '--resume', '--quiet'], { stdio: ['ignore', 'ignore', 'inherit'], cwd: ROOT });
    if (r.status !== 0) throw new Error(`${name} exited ${r.status}; re-run the same command to continue`);
  }
  return JSON.parse(readFileSync(file, 'utf8')) as Result;
}

/** Whether every tensor of `base` has the same bytes in `grown`. */
function unchanged(base: string, grown: string): { tensors: number; identical: boolean } {
  return tidy(() => {
    const a = loadSafetensors(base).tensors;
    const b = loadSafetensors(grown).tensors;
    const bytes = (t: { toArray(): ArrayLike<unknown> & { buffer: ArrayBufferLike } }) => Buffer.from(t.toArray().buffer);
    let identical = true;
    for (const [k, t] of a) {
      const u = b.get(k);
      if (!u || u.shape.join() !== t.shape.join() || !bytes(u).equals(bytes(t))) identical = false;
    }
    return { tensors: a.size, identical };
  });
}

mkdirSync(out, { recursive: true });
const rows = seeds.map((seed) => {
  const s = ['--seed', String(seed)];
  const dir = (n: string) => path.join(out, `${n}-s${seed}`);
  const base = stage(`base, seed ${seed}`, dir('base'), ['run', '--method', 'lorkd', '--kd', 'none', '--tasks', old.join(','), ...budget, ...rank, ...s]);
  const baseFile = path.join(dir('base'), 'decomposition.safetensors');
  const grow = stage(`grow, seed ${seed}`, dir('grow'), ['grow', '--decomposition', baseFile, '--tasks', fresh, ...budget, ...rank, ...s]);
  const joint = stage(`joint, seed ${seed}`, dir('joint'), ['run', '--method', 'lorkd', '--kd', 'none', '--tasks', tasks.join(','), ...budget, ...rank, ...s]);
  const stl = stage(`stl, seed ${seed}`, dir('stl'), ['run', '--method', 'stl', '--tasks', fresh, ...budget, ...s]);
  const acc = (r: Result) => r.per_task[r.tasks.length - 1]!.accuracy;
  return {
    seed, grow_accuracy: acc(grow), joint_accuracy: acc(joint), stl_accuracy: acc(stl),
    base_seconds: base.seconds, grow_seconds: grow.seconds, joint_seconds: joint.seconds,
    old_experts: unchanged(baseFile, path.join(dir('grow'), 'decomposition.safetensors')),
  };
});
const est = (k: 'grow_accuracy' | 'joint_accuracy' | 'stl_accuracy' | 'grow_seconds' | 'joint_seconds'): Estimate => estimate(rows.map((r) => r[k]));
const summary = {
  tasks: { old, new: fresh }, seeds, budget, rank: rank[1], loadavg_at_end: loadavg(),
  new_task_accuracy: { grow: est('grow_accuracy'), joint: est('joint_accuracy'), stl: est('stl_accuracy') },
  seconds: { grow: est('grow_seconds'), joint: est('joint_seconds') },
  grow_over_joint_time: estimate(rows.map((r) => r.grow_seconds / r.joint_seconds)),
  old_experts_unchanged: rows.every((r) => r.old_experts.identical),
  runs: rows,
};
writeFileSync(path.join(out, 'grow-study.json'), `${JSON.stringify(summary, null, 2)}\n`);
const show = (e: Estimate, f: (x: number) => string) => `${f(e.mean)}${e.ci95 ? ` [${f(e.ci95[0])}, ${f(e.ci95[1])}]` : ''}`;
const pct = (x: number) => (100 * x).toFixed(1);
console.log(`new task ${fresh} (after ${old.join(', ')}), seeds ${seeds.join(',')}, ${budget.join(' ')}`);
console.log(`test accuracy %: grow ${show(summary.new_task_accuracy.grow, pct)}, joint ${show(summary.new_task_accuracy.joint, pct)}, stl ${show(summary.new_task_accuracy.stl, pct)}`);
console.log(`wall time s: grow ${show(summary.seconds.grow, (x) => x.toFixed(0))}, joint retrain ${show(summary.seconds.joint, (x) => x.toFixed(0))}; grow/joint ${show(summary.grow_over_joint_time, (x) => x.toFixed(2))}`);
console.log(`the ${old.length} old experts bit-identical after grow: ${summary.old_experts_unchanged ? 'yes' : 'NO'} (${rows.map((r) => `${r.old_experts.tensors} tensors`).join(', ')})`);
console.log(`written: ${path.join(out, 'grow-study.json')}`);
