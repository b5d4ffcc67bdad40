// `npm run bench`: every benchmark of the README in one run, as markdown tables, plus
// bench/results.json. Ratios are measured in the same run (the machine is shared and noisy).
//   node dist/bench/run.js [ops|train|eks|all] [--quick]
import { writeFileSync } from 'node:fs';
import { benchOps } from './ops.js';
import { benchTrain, type TrainBenchResult } from './train.js';
import { benchEks, type EksBenchResult } from './eks.js';
import { STRATEGIES, type Strategy } from '../src/lorkd/strategies.js';
import { machineLine, watchMachine } from './machine.js';

const what = process.argv[2] ?? 'all';
const quick = process.argv.includes('--quick');
const out: Record<string, unknown> = { date: new Date().toISOString() };
const watch = watchMachine();
const f = (v: number | null | undefined, d = 2) => (v === null || v === undefined ? '-' : v.toFixed(d));

if (what === 'ops' || what === 'all') {
  const r = benchOps();
  out.ops = r;
  console.log('\n| op | lorkd | PyTorch eager | lorkd / PyTorch |\n|---|---|---|---|');
  for (const e of r) console.log(`| ${e.op} | ${f(e.lorkd)} | ${f(e.pytorch)} | ${f(e.ratio)} |`);
}

if (what === 'train' || what === 'all') {
  const rows: TrainBenchResult[] = [];
  for (const input of quick ? [28] : [28, 64, 224]) {
    for (const format of ['contiguous', 'channels_last'] as const) {
      rows.push(benchTrain({ model: 'shufflenet_v2_x1_0', input, batch: 64, format, steps: input === 224 ? 3 : 10, warmup: 2 }));
    }
  }
  rows.push(benchTrain({ model: 'resnet50', input: 224, batch: 16, format: 'channels_last', steps: 3, warmup: 1, forwardOnly: true }));
  out.train = rows;
  console.log('\n| model | input | batch | format | step | lorkd img/s | PyTorch img/s | ratio | lorkd peak RSS MB | PyTorch peak RSS MB |\n|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.model} | ${r.input} | ${r.batch} | ${r.format} | ${r.forward_only ? 'forward' : 'train'} | ${f(r.lorkd_img_per_s, 0)} | ${f(r.pytorch_img_per_s, 0)} | ${f(r.ratio)} | ${f(r.lorkd_peak_rss_mb, 0)} | ${f(r.pytorch_peak_rss_mb, 0)} |`);
  }
}

if (what === 'eks' || what === 'all') {
  const rows: EksBenchResult[] = [];
  const grid = quick
    ? [{ tasks: 10, rank: 8, batch: 64, input: 64 }]
    : [3, 10].flatMap((tasks) => [4, 8, 16].flatMap((rank) => [64, 256].flatMap((batch) => [28, 64, 224].map((input) => ({ tasks, rank, batch, input })))));
  for (const g of grid) {
    // The paper's aggregated strategy and the loop are 4-17x slower: measured on the small shapes only.
    const small = g.batch * g.input * g.input <= 64 * 64 * 64;
    const strategies: Strategy[] = STRATEGIES.filter((s) => small || (s !== 'aggregated' && s !== 'loop'));
    if (g.input === 224 && g.batch === 256) continue; // minutes per step on 2 cores
    rows.push(benchEks({ ...g, steps: g.input === 224 ? 2 : 4, strategies }));
    const r = rows[rows.length - 1]!;
    process.stderr.write(`eks T=${g.tasks} r=${g.rank} b=${g.batch} in=${g.input}: auto/plain ${f(r.auto_over_plain)}\n`);
  }
  out.eks = rows;
  console.log(`\n| T | r | batch | input | plain ms | ${STRATEGIES.map((s) => `${s} / plain`).join(' | ')} | auto (choice) / plain |\n|${'---|'.repeat(6 + STRATEGIES.length)}`);
  for (const r of rows) {
    console.log(`| ${r.tasks} | ${r.rank} | ${r.batch} | ${r.input} | ${f(r.plain_ms, 1)} | ${STRATEGIES.map((s) => f(r[`${s}_over_plain`] as number | undefined)).join(' | ')} | ${f(r.auto_over_plain)} (${r.auto_choice}) |`);
  }
}

out.machine = watch.stop();
console.log(`\n${machineLine(out.machine as ReturnType<typeof watch.stop>)}`);
writeFileSync(new URL('../../bench/results.json', import.meta.url), JSON.stringify(out, null, 2) + '\n');
