// Before/after of the per-task expert factors (issue 20): `lorkd bench eks` and `lorkd bench
// decompose --no-torch` of an OLD build (default /work/main, its dist/ compiled) and of this build,
// alternated round by round in one run, so that a busy machine slows both alike. Prints each
// build's median per measurement, the new/old ratio (eks: step ms, > 1 is slower; decompose:
// img/s, < 1 is slower) and the load average before and after.
//   node dist/bench/factors-ab.js [--old /work/main] [--rounds 3] [--tasks 10] [--rank 8] [--batch 64] [--input 64] [--only eks|decompose] [--json]
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { machineLine, watchMachine } from './machine.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const arg = (name: string, d: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : d;
};
const NEW = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OLD = path.resolve(arg('old', '/work/main'));
const rounds = Number(arg('rounds', '3'));
const only = arg('only', '');
const eksArgs = ['bench', 'eks', '--tasks', arg('tasks', '10'), '--rank', arg('rank', '8'), '--batch', arg('batch', '64'), '--input', arg('input', '64'), '--steps', '5', '--strategies', 'fused,routed,gathered,loop', '--json'];
const decArgs = ['bench', 'decompose', '--no-torch', '--batch', arg('decompose-batch', '128'), '--input', arg('input', '64'), '--steps', '4', '--json'];

function lorkd(root: string, args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'lorkd.js'), ...args], { encoding: 'utf8', cwd: root, timeout: 1_800_000 });
  if (r.status !== 0) throw new Error(`${root}: lorkd ${args.join(' ')} exited ${r.status}: ${r.stderr.trim().split('\n').pop()}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const KEYS = { eks: ['plain_ms', 'fused_ms', 'routed_ms', 'gathered_ms', 'loop_ms'], decompose: ['lorkd_img_per_s', 'mtl_img_per_s'] } as const;
const samples: Record<'old' | 'new', Record<string, number[]>> = { old: {}, new: {} };
const watch = watchMachine();
const load0 = loadavg();
for (let round = 1; round <= rounds; round++) {
  // Alternate which build goes first, so neither always runs on a warmer (or busier) machine.
  const order: ('old' | 'new')[] = round % 2 ? ['old', 'new'] : ['new', 'old'];
  for (const which of order) {
    const root = which === 'old' ? OLD : NEW;
    for (const [bench, args] of [['eks', eksArgs], ['decompose', decArgs]] as const) {
      if (only && only !== bench) continue;
      const r = lorkd(root, args);
      for (const k of KEYS[bench]) if (typeof r[k] === 'number') (samples[which][`${bench}.${k}`] ??= []).push(r[k] as number);
    }
    process.stderr.write(`[factors-ab] round ${round}/${rounds}: ${which} done (load ${loadavg().map((l) => l.toFixed(1)).join(' ')})\n`);
  }
}
const load1 = loadavg();
const machine = watch.stop();
const rows = Object.keys(samples.new).map((k) => {
  const o = median(samples.old[k] ?? [NaN]);
  const n = median(samples.new[k]!);
  return { measure: k, old: o, new: n, new_over_old: n / o };
});
if (process.argv.includes('--json')) console.log(JSON.stringify({ old: OLD, new: NEW, rounds, loadavg_before: load0, loadavg_after: load1, rows, machine }));
else {
  console.log(`old ${OLD}, new ${NEW}, ${rounds} rounds; load average ${load0.map((l) => l.toFixed(2)).join(' ')} before, ${load1.map((l) => l.toFixed(2)).join(' ')} after`);
  for (const r of rows) console.log(`${r.measure.padEnd(28)} old ${r.old.toFixed(2).padStart(9)}  new ${r.new.toFixed(2).padStart(9)}  new/old ${r.new_over_old.toFixed(3)}`);
  console.log(machineLine(machine));
}
