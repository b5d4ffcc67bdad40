// lorkd report counts each task's experts when a decomposition gives each task its own rank
// (issue 20 §2): Table 4's per-task rows equal the parameters of a model built with those ranks
// (counted from its own tensors), the experts' training FLOPs grow linearly with the rank, one
// rank for every task adds no rows, and a rank map that misses a task fails in one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, cpSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadCompare, loadRun, buildReport } from '../src/report/index.js';
import { createProgress } from '../src/experiments/progress.js';
import { DecompositionModel } from '../src/lorkd/index.js';
import { UserError } from '../src/tensor/errors.js';
import { REPO } from './helpers/pipeline.js';

const FIX = path.join(REPO, 'test', 'fixtures', 'report');
const quiet = createProgress({ quiet: true });
const RANKS: Record<string, number> = { breastmnist: 4, pneumoniamnist: 8, retinamnist: 16 };
const KEY = 'lorkd-rbreastmnist4-pneumoniamnist8-retinamnist16';

/** Rows of table `id` as text cells (header first). */
function tableCells(html: string, id: string): string[][] | null {
  const m = new RegExp(`<table id="${id}">([\\s\\S]*?)</table>`).exec(html);
  if (!m) return null;
  return [...m[1]!.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((r) => [...r[1]!.matchAll(/<t[hd][^>]*>([\s\S]*?)<\/t[hd]>/g)].map((c) => c[1]!.replace(/<[^>]+>/g, '').trim()));
}

/** Each task's expert parameters, counted from a model built with these ranks. */
function builtCounts(tasks: string[], ranks: Record<string, number>): Map<string, number> {
  const dm = new DecompositionModel({ model: 'shufflenet_v2_x1_0', tasks: tasks.map((name) => ({ name, classNames: ['a', 'b'] })), rank: ranks });
  try {
    return new Map(tasks.map((t) => [t, dm.namedParameters().filter(([n]) => n.endsWith(`.expertA.${t}`) || n.endsWith(`.expertB.${t}`)).reduce((a, [, p]) => a + p.numel, 0)]));
  } finally {
    dm.dispose();
  }
}

function withCompare(edit: (j: any) => void, fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-report-ranks-'));
  cpSync(path.join(FIX, 'compare'), dir, { recursive: true });
  const file = path.join(dir, 'compare.json');
  const j = JSON.parse(readFileSync(file, 'utf8'));
  edit(j);
  writeFileSync(file, JSON.stringify(j));
  return Promise.resolve(fn(dir)).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('compare: a run with a rank per task gets Table 4 rows per task: params of each task\'s own experts, FLOPs linear in the rank', async () => {
  await withCompare(
    (j) => (j.methods[KEY] = { ...j.methods.lorkd, method: 'lorkd', rank: undefined, ranks: RANKS }),
    async (dir) => {
      const study = loadCompare(dir);
      const html = (await buildReport(study, quiet)).html;
      const cells = tableCells(html, 'table4-tasks');
      assert.ok(cells, 'the per-task table is in the page');
      const tasks = study.tasks;
      assert.deepEqual(cells.slice(1).map((r) => [r[1], r[2]]), tasks.map((t) => [t, String(RANKS[t])]));
      const built = builtCounts(tasks, RANKS);
      for (const r of cells.slice(1)) assert.equal(r[3], (built.get(r[1]!)! / 1e6).toFixed(2), `${r[1]} params`);
      for (const e of study.taskExperts) assert.equal(e.params_experts, built.get(e.task), `${e.task} exact count`);
      // The experts' MACs are r (Cin + Cout) per output pixel of each 1x1 conv (+ the dense 3x3 ones):
      // W0's part is shared, so f(r) - f(r') is proportional to r - r'.
      const f = (t: string) => study.taskExperts.find((e) => e.task === t)!.flops_training!;
      const perRank = (f('retinamnist') - f('pneumoniamnist')) / 8;
      assert.ok(perRank > 0);
      assert.ok(Math.abs(f('pneumoniamnist') - f('breastmnist') - 4 * perRank) <= 1e-9 * f('retinamnist'), 'linear in the rank');
      assert.ok(study.taskExperts.every((e) => e.method === KEY));
    },
  );
});

test('compare: one rank for every run adds no per-task rows; a rank map missing a task fails in one line naming the file', async () => {
  await withCompare(() => {}, async (dir) => {
    const study = loadCompare(dir);
    assert.deepEqual(study.taskExperts, []);
    assert.equal(tableCells((await buildReport(study, quiet)).html, 'table4-tasks'), null);
  });
  await withCompare(
    (j) => (j.methods[KEY] = { ...j.methods.lorkd, method: 'lorkd', ranks: { breastmnist: 4, retinamnist: 16 } }),
    (dir) => {
      assert.throws(() => loadCompare(dir), (e: Error) => e instanceof UserError && e.message.includes('compare.json') && e.message.includes('ranks') && !e.message.includes('\n'));
    },
  );
});

test('run: a compare run folder whose LoRKD has a rank per task (describe.rank "a=4,b=16") counts each task', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-report-ranks-run-'));
  try {
    const j = JSON.parse(readFileSync(path.join(FIX, 'method-run', 'result.json'), 'utf8'));
    const ranks = { breastmnist: 4, retinamnist: 16 };
    writeFileSync(path.join(dir, 'result.json'), JSON.stringify({ ...j, method: 'lorkd', describe: { method: 'lorkd', rank: 'breastmnist=4,retinamnist=16' } }));
    const study = loadRun(dir);
    const built = builtCounts(j.tasks, ranks);
    assert.deepEqual(study.taskExperts.map((e) => [e.task, e.rank, e.params_experts]), j.tasks.map((t: string) => [t, ranks[t as keyof typeof ranks], built.get(t)]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
