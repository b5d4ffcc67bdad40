// lorkd report's loaders and tables: every number in the HTML tables equals the source JSON's
// (formatted here from the JSON directly), intervals are checked against their definitions, and
// malformed inputs fail with one line naming the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, cpSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadCompare, loadRun, loadStudy, buildReport } from '../src/report/index.js';
import { wilson95 } from '../src/report/stats.js';
import { groupMethod, parseMig } from '../src/report/load-analysis.js';
import { createProgress } from '../src/experiments/progress.js';
import { UserError } from '../src/tensor/errors.js';
import { REPO, lorkd } from './helpers/pipeline.js';

const FIX = path.join(REPO, 'test', 'fixtures', 'report');
const COMPARE = path.join(FIX, 'compare');
const RUN = path.join(FIX, 'run');
const quiet = createProgress({ quiet: true });
const readJ = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

/** The cells of table `id` as text, row by row (header row first); a cell's interval after a space. */
function tableCells(html: string, id: string): string[][] {
  const m = new RegExp(`<table id="${id}">([\\s\\S]*?)</table>`).exec(html);
  assert.ok(m, `table ${id} is in the page`);
  return [...m[1]!.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((r) =>
    [...r[1]!.matchAll(/<t[hd][^>]*>([\s\S]*?)<\/t[hd]>/g)].map((c) => c[1]!.replace(/<span class="ci">/g, ' ').replace(/<[^>]+>/g, '').replace(/&amp;/g, '&').trim()),
  );
}
const row = (cells: string[][], first: string) => {
  const r = cells.find((c) => c[0] === first);
  assert.ok(r, `a row "${first}" in ${JSON.stringify(cells.map((c) => c[0]))}`);
  return r!;
};
const p1 = (x: number) => (x * 100).toFixed(1);
const est = (e: { mean: number; ci95: [number, number] | null }) => (e.ci95 ? `${p1(e.mean)} ${p1(e.ci95[0])}–${p1(e.ci95[1])}` : p1(e.mean));

async function htmlOf(o: Parameters<typeof loadStudy>[0]) {
  return (await buildReport(loadStudy(o), quiet)).html;
}

test('compare: Table 1 per-task accuracy, Avg, AUC and Params equal compare.json', async () => {
  const j = readJ(path.join(COMPARE, 'compare.json'));
  const html = await htmlOf({ compare: COMPARE, progress: quiet });
  const cells = tableCells(html, 'table1');
  assert.equal(cells.length, 1 + Object.keys(j.methods).length);
  const labels: Record<string, string> = { foundation: 'Foundation', stl: 'STL', mtl: 'MTL', kf: 'KF', lorkd: 'LoRKD', 'lorkd-r4': 'LoRKD (r=4)', 'lorkd-r16': 'LoRKD (r=16)' };
  for (const [k, m] of Object.entries<any>(j.methods)) {
    const r = row(cells, labels[k]!);
    assert.equal(r[1], (m.params_training / 1e6).toFixed(2), `${k} params`);
    j.tasks.forEach((t: string, i: number) => assert.equal(r[2 + i], est(m.per_task[t].accuracy), `${k} ${t}`));
    assert.equal(r[2 + j.tasks.length], est(m.mean_accuracy), `${k} avg`);
    assert.equal(r[3 + j.tasks.length], `${m.mean_auc.mean.toFixed(3)} ${m.mean_auc.ci95[0].toFixed(3)}–${m.mean_auc.ci95[1].toFixed(3)}`, `${k} auc`);
  }
  // Best of each column in bold: the largest mean of the JSON.
  const best = Object.entries<any>(j.methods).reduce((a, b) => (b[1].mean_accuracy.mean > a[1].mean_accuracy.mean ? b : a));
  assert.match(html, new RegExp(`<td class="best">${p1(best[1].mean_accuracy.mean).replace('.', '\\.')}<span`));
});

test('compare: per-task paired differences (per_task.vs_lorkd) become columns of the paired table, bold where the interval excludes 0', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-paired-'));
  try {
    const j = readJ(path.join(COMPARE, 'compare.json'));
    // Without per-task differences (an older compare.json): the average only.
    assert.deepEqual(tableCells(await htmlOf({ compare: COMPARE, progress: quiet }), 'paired-table')[0], ['Method', 'Δ mean accuracy (points)', '95% interval', 'Reading']);
    const ref = j.methods.lorkd.per_task;
    const seeds = j.seeds.length;
    for (const [k, m] of Object.entries<any>(j.methods)) {
      if (!m.vs_lorkd) continue;
      for (const t of j.tasks) {
        const d = m.per_task[t].accuracy.runs.map((v: number, s: number) => v - ref[t].accuracy.runs[s]);
        const mean = d.reduce((a: number, b: number) => a + b, 0) / seeds;
        const sd = Math.sqrt(d.reduce((a: number, b: number) => a + (b - mean) ** 2, 0) / (seeds - 1));
        const half = (4.302652729911275 * sd) / Math.sqrt(seeds); // t(0.975, 2): three seeds
        m.per_task[t].vs_lorkd = { mean, ci95: [mean - half, mean + half], runs: d };
      }
    }
    // One difference made certain (all seeds +5 points): its cell is bold.
    j.methods.stl.per_task.retinamnist.vs_lorkd = { mean: 0.05, ci95: [0.05, 0.05], runs: [0.05, 0.05, 0.05] };
    writeFileSync(path.join(dir, 'compare.json'), JSON.stringify(j));
    const html = await htmlOf({ compare: dir, progress: quiet });
    const cells = tableCells(html, 'paired-table');
    assert.deepEqual(cells[0], ['Method', 'Δ mean accuracy (points)', '95% interval', 'Reading', 'BreastMNIST', 'PneumoniaMNIST', 'RetinaMNIST']);
    const signed = (x: number) => (x >= 0 ? '+' : '') + p1(x);
    for (const [k, m] of Object.entries<any>(j.methods)) {
      if (!m.vs_lorkd) continue;
      const r = cells.find((c) => c[0] !== 'Method' && (c[0].toLowerCase() === k || c[0] === `LoRKD (r=${k.slice(7)})`))!;
      j.tasks.forEach((t: string, i: number) => {
        const v = m.per_task[t].vs_lorkd;
        assert.equal(r[4 + i], `${signed(v.mean)} ${signed(v.ci95[0])} to ${signed(v.ci95[1])}`, `${k} ${t}`);
      });
    }
    const table = /<table id="paired-table">([\s\S]*?)<\/table>/.exec(html)![1]!;
    const bold = [...table.matchAll(/<td class="best">([^<]*)</g)].map((x) => x[1]);
    assert.ok(bold.includes('+5.0'), `the certain difference is bold: ${bold.join(', ')}`);
    // Exactly the per-task intervals that exclude 0 are bold.
    const beyond = Object.values<any>(j.methods).flatMap((m) => j.tasks.map((t: string) => m.per_task[t].vs_lorkd).filter((v: any) => v && (v.ci95[0] > 0 || v.ci95[1] < 0)));
    assert.deepEqual(bold.sort(), beyond.map((v: any) => signed(v.mean)).sort());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('compare: Table 3 has the lorkd ranks in order; paired readings follow the intervals; Table 4 params', async () => {
  const j = readJ(path.join(COMPARE, 'compare.json'));
  const html = await htmlOf({ compare: COMPARE, progress: quiet });
  const t3 = tableCells(html, 'table3');
  assert.deepEqual(t3.slice(1).map((r) => r[0]), ['r = 4', 'r = 8', 'r = 16']);
  for (const [label, key] of [['r = 4', 'lorkd-r4'], ['r = 8', 'lorkd'], ['r = 16', 'lorkd-r16']] as const) {
    const r = row(t3, label);
    assert.equal(r[1], (j.methods[key].params_training / 1e6).toFixed(2));
    assert.equal(r[r.length - 1], est(j.methods[key].mean_accuracy));
  }
  const paired = tableCells(html, 'paired-table');
  for (const [k, m] of Object.entries<any>(j.methods)) {
    if (!m.vs_lorkd) continue;
    const [lo, hi] = m.vs_lorkd.ci95;
    const r = paired.find((c) => c[0] !== 'Method' && (c[0].toLowerCase() === k || c[0] === `LoRKD (r=${k.slice(7)})`))!;
    assert.ok(r, `paired row for ${k}`);
    assert.equal(Number(r[1]), Number(p1(m.vs_lorkd.mean)), `${k} difference`);
    assert.equal(r[3], hi < 0 ? 'LoRKD better' : lo > 0 ? `${r[0]} better` : "within the seeds' noise", `${k} reading`);
  }
  const t4 = tableCells(html, 'table4');
  const header = t4[0]!;
  const dep = row(t4, 'Params (M) deployment');
  assert.equal(dep[header.indexOf('KF')], (j.methods.kf.params_deployment / 1e6).toFixed(2));
  // compare.json has no FLOPs: counted at its input (64, in M) for the backbone methods, a dash for the foundation and KF.
  const ft = row(t4, 'FLOPs (M) training');
  const fd = row(t4, 'FLOPs (M) deployment');
  const col = (name: string) => header.indexOf(name);
  assert.equal(ft[col('Foundation')], '–');
  assert.equal(fd[col('KF')], '–');
  const n = (r: string[], name: string) => Number(r[col(name)]);
  assert.ok(n(ft, 'LoRKD (r=16)') > n(ft, 'LoRKD') && n(ft, 'LoRKD') > n(ft, 'LoRKD (r=4)') && n(ft, 'LoRKD (r=4)') > n(fd, 'LoRKD'), 'training FLOPs grow with the rank');
  for (const m of ['STL', 'MTL', 'LoRKD (r=4)', 'LoRKD (r=16)']) assert.equal(n(fd, m), n(fd, 'LoRKD'), `${m} deploys the plain backbone`);
  assert.equal(n(ft, 'STL'), n(fd, 'STL'));
  // The paper's Table 4: 0.15 G for the backbone at 224x224; FLOPs scale with the pixels.
  const expected = 150 * (64 / 224) ** 2;
  assert.ok(Math.abs(n(fd, 'LoRKD') - expected) < 0.1 * expected, `shufflenet_v2_x1_0 at 64x64: about ${expected.toFixed(1)} M, got ${n(fd, 'LoRKD')}`);
});

test('compare: transfer (Table 2) and MIG equal their files; MIG pools seeds with a t interval', async () => {
  const html = await htmlOf({ compare: COMPARE, progress: quiet });
  const t2 = tableCells(html, 'table2');
  for (const label of ['lorkd-backbone', 'lorkd-expert']) {
    const tj = readJ(path.join(COMPARE, 'transfer', label, 'transfer.json'));
    const r = row(t2, label);
    assert.equal(r[r.length - 1], est(tj.accuracy));
    assert.equal(r[1], (tj.params_deployed / 1e6).toFixed(2));
  }
  assert.equal(row(t2, 'Baseline (scratch)')[3], est(readJ(path.join(COMPARE, 'transfer', 'scratch', 'transfer.json')).accuracy));
  const mig = readJ(path.join(COMPARE, 'mig.json'));
  const mt = tableCells(html, 'mig-table');
  for (const [k, label] of [['lorkd', 'LoRKD'], ['stl', 'STL']]) {
    const xs: number[] = mig.groups.filter((g: any) => g.label.startsWith(`runs/${k}-s`)).map((g: any) => g.mig);
    assert.equal(xs.length, 3);
    const mean = xs.reduce((a, b) => a + b, 0) / 3;
    const sd = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / 2);
    const h = (4.303 * sd) / Math.sqrt(3); // t_{0.975, 2}
    assert.equal(row(mt, label)[1], `${mean.toFixed(3)} ${(mean - h).toFixed(3)}–${(mean + h).toFixed(3)}`);
  }
  assert.equal(groupMethod('runs/lorkd-s1/experts'), 'lorkd');
  assert.equal(groupMethod('runs/aligned-mtl-s2/deployed'), 'aligned-mtl');
  assert.equal(groupMethod('.', ['/r/foundation.safetensors']), 'foundation');
  assert.equal(groupMethod('experts', ['/r/experts/a.safetensors']), 'lorkd');
});

test('MIG of a compare: a run\'s foundation file and its deployed/ copies count once; deployed/ groups pool by method', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-mig-'));
  try {
    const g = (label: string, mig: number) => ({ label, mig, factors: [{ factor: 'task', gap: mig }], networks: [{ file: `/x/${label}/a.safetensors` }] });
    const file = path.join(dir, 'mig.json');
    writeFileSync(file, JSON.stringify({ groups: [g('runs/foundation-s0', 0.3), g('runs/foundation-s0/deployed', 0.3), g('runs/foundation-s1', 0.1), g('runs/foundation-s1/deployed', 0.1), g('runs/stl-s0/deployed', 0.2), g('runs/stl-s1/deployed', 0.4)] }));
    const rows = parseMig(file);
    assert.deepEqual(rows.map((r) => [r.method, r.mig.runs]), [['foundation', [0.3, 0.1]], ['stl', [0.2, 0.4]]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('compare: training curves come from the run folders (moved folder: found under runs/); the Grad-CAM strips', () => {
  const s = loadStudy({ compare: COMPARE, progress: quiet });
  const series = [...new Set(s.curves.map((c) => c.series))].sort();
  assert.deepEqual(series, ['foundation-s0', 'foundation-s1', 'foundation-s2', 'lorkd-s0', 'lorkd-s1', 'lorkd-s2', 'stl-s0', 'stl-s1', 'stl-s2']);
  const h = readJ(path.join(COMPARE, 'runs', 'lorkd-s1', 'result.json')).history;
  const pts = s.curves.filter((c) => c.series === 'lorkd-s1');
  assert.deepEqual(pts.map((p) => [p.epoch, p.loss, p.val]), h.map((e: any) => [e.epoch + 1, e.loss, e.val]));
  assert.equal(s.gradcam!.rows.length, 2);
  assert.deepEqual(s.gradcam!.columns, ['input', 'foundation', 'breastmnist']);
  assert.ok(s.gradcam!.rows.every((r) => r.dataUri.startsWith('data:image/png;base64,')));
});

test('run: Table 1 equals results.json; binomial intervals are Wilson\'s; curves from checkpoint headers; FLOPs counted', async () => {
  const j = readJ(path.join(RUN, 'results.json'));
  const study = loadRun(RUN);
  const html = (await buildReport(study, quiet)).html;
  const cells = tableCells(html, 'table1');
  const check = (label: string, rows: any[]) => {
    const r = row(cells, label);
    rows.forEach((t, i) => {
      const [lo, hi] = wilson95(t.accuracy, t.n);
      assert.equal(r[2 + i], `${p1(t.accuracy)} ${p1(lo)}–${p1(hi)}`, `${label} ${t.task}`);
    });
    assert.equal(Number(r[2 + rows.length].split(' ')[0]), Number(p1(rows.reduce((a, t) => a + t.accuracy, 0) / rows.length)));
  };
  check('Foundation', j.foundation.unified);
  check('Foundation (task classes)', j.foundation.restricted);
  check('LoRKD', j.lorkd.per_task);
  assert.equal(row(cells, 'LoRKD')[1], (j.lorkd.params_training / 1e6).toFixed(2));
  // Wilson's bounds are the two roots p of (phat - p)^2 = z^2 p (1 - p) / n.
  for (const [ph, n] of [[0.7243589743589743, 156], [0.05, 40], [1, 20]] as const) {
    const [lo, hi] = wilson95(ph, n);
    const z2 = 1.959963984540054 ** 2;
    for (const p of [lo, hi]) if (p > 0 && p < 1) assert.ok(Math.abs((ph - p) ** 2 - (z2 * p * (1 - p)) / n) < 1e-12, `root ${p} for ${ph}, ${n}`);
    assert.ok(lo <= ph && ph <= hi);
  }
  const meta = readFileSync(path.join(RUN, 'decompose.ckpt.safetensors'));
  const hist = JSON.parse(JSON.parse(meta.subarray(8, 8 + Number(meta.readBigUInt64LE(0))).toString()).__metadata__.extra).history;
  assert.deepEqual(study.curves.filter((c) => c.series === 'decompose').map((c) => [c.epoch, c.loss]), hist.map((h: any) => [h.epoch + 1, h.loss]));
  const lorkdRow = study.methods.find((m) => m.name.startsWith('lorkd'))!;
  assert.ok(lorkdRow.flops_training! > lorkdRow.flops_deployment! && lorkdRow.flops_deployment! > 0, 'the experts add FLOPs in training');
  assert.ok(study.methods[0]!.flops_deployment! > 5 * lorkdRow.flops_deployment!, 'resnet18 costs more than shufflenet');
  // Sections without data say which command produces them.
  assert.match(html, /<section id="paired" class="no-data">[\s\S]*?lorkd compare/);
  assert.match(html, /<section id="table3" class="no-data">[\s\S]*?--ranks/);
});

test('run: one compare run folder (result.json of lorkd compare): its method, Wilson intervals, history', async () => {
  const dir = path.join(FIX, 'method-run');
  const j = readJ(path.join(dir, 'result.json'));
  const study = loadRun(dir);
  const cells = tableCells((await buildReport(study, quiet)).html, 'table1');
  const r = row(cells, 'STL');
  j.per_task.forEach((t: any, i: number) => {
    const [lo, hi] = wilson95(t.accuracy, t.n);
    assert.equal(r[2 + i], `${p1(t.accuracy)} ${p1(lo)}–${p1(hi)}`, t.task);
  });
  assert.equal(r[1], (j.params_training / 1e6).toFixed(2));
  assert.deepEqual(study.curves.map((c) => [c.epoch, c.loss, c.val]), j.history.map((h: any) => [h.epoch + 1, h.loss, h.val]));
  assert.equal(study.methods[0]!.flops_training, study.methods[0]!.flops_deployment, 'STL trains and deploys the plain backbone');
  // The precision is shown (a result.json of an earlier version has none: fp32).
  assert.deepEqual(study.facts.find(([k]) => k === 'precision'), ['precision', j.precision ?? 'fp32']);
});

test('--transfer FILE: one lorkd transfer result beside a run', () => {
  const file = path.join(COMPARE, 'transfer', 'lorkd-expert', 'transfer.json');
  const tj = readJ(file);
  const s = loadStudy({ run: RUN, transfer: file, flops: false, progress: quiet });
  assert.equal(s.transfer.length, 1);
  const t = s.transfer[0]!;
  assert.deepEqual([t.method, t.downstream, t.shots, t.accuracy.mean, t.accuracy.ci95, t.accuracy.runs, t.compression], ['expert: breastmnist', 'mednist', 5, tj.accuracy.mean, tj.accuracy.ci95, tj.accuracy.values, tj.compression_ratio]);
  assert.throws(() => loadStudy({ run: RUN, transfer: path.join(RUN, 'nope.json'), flops: false, progress: quiet }), /--transfer .*nope\.json: no such file/);
});

test('compare with several --transfer specs: OUT/transfer/<spec>/<label>/ gives one Table 2 column per spec', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-report-'));
  try {
    const cmp = path.join(dir, 'cmp');
    cpSync(COMPARE, cmp, { recursive: true });
    rmSync(path.join(cmp, 'transfer'), { recursive: true });
    const src = (label: string) => readJ(path.join(COMPARE, 'transfer', label, 'transfer.json'));
    const put = (spec: string, label: string, shots: number, scale: number) => {
      const tj = src('lorkd-expert');
      tj.shots = shots;
      tj.accuracy.mean *= scale;
      mkdirSync(path.join(cmp, 'transfer', spec, label), { recursive: true });
      writeFileSync(path.join(cmp, 'transfer', spec, label, 'transfer.json'), JSON.stringify(tj));
      return tj;
    };
    const a = put('mednist-k5-e20', 'lorkd', 5, 1);
    const b = put('mednist-k20-e20', 'lorkd', 20, 1.1);
    const c = put('mednist-k20-e20', 'baseline', 20, 0.5);
    const t2 = tableCells(await htmlOf({ compare: cmp, flops: false, progress: quiet }), 'table2');
    const header = t2[0]!;
    const col = (name: string) => header.indexOf(name);
    assert.ok(col('mednist (5-shot)') > 0 && col('mednist (20-shot)') > 0, `columns: ${header.join(' | ')}`);
    assert.equal(row(t2, 'LoRKD')[col('mednist (5-shot)')], est(a.accuracy));
    assert.equal(row(t2, 'LoRKD')[col('mednist (20-shot)')], est(b.accuracy));
    assert.equal(row(t2, 'Baseline (scratch)')[col('mednist (20-shot)')], est(c.accuracy));
    assert.equal(row(t2, 'Baseline (scratch)')[col('mednist (5-shot)')], '–');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('malformed inputs: one line naming the file (API and CLI)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-report-'));
  try {
    const bad = path.join(dir, 'cmp');
    cpSync(COMPARE, bad, { recursive: true });
    const file = path.join(bad, 'compare.json');
    const j = readJ(file);
    j.methods.stl.per_task.retinamnist.accuracy.mean = 'high';
    writeFileSync(file, JSON.stringify(j));
    assert.throws(() => loadCompare(bad), (e: Error) => e instanceof UserError && e.message.includes(file) && e.message.includes('methods.stl.per_task.retinamnist.accuracy.mean') && !e.message.includes('\n'));
    writeFileSync(file, '{"tasks": [');
    assert.throws(() => loadCompare(bad), (e: Error) => e instanceof UserError && e.message.startsWith(`${file} is not valid JSON`));
    writeFileSync(file, JSON.stringify({ ...readJ(path.join(COMPARE, 'compare.json')) }));
    writeFileSync(path.join(bad, 'gradcam', 'hand-001.png'), 'not a png');
    assert.throws(() => loadStudy({ compare: bad, progress: quiet }), (e: Error) => e instanceof UserError && /hand-001\.png is not a PNG file/.test(e.message));
    const run = path.join(dir, 'run');
    cpSync(RUN, run, { recursive: true });
    writeFileSync(path.join(run, 'foundation.ckpt.safetensors'), Buffer.from([1, 2, 3]));
    assert.throws(() => loadRun(run, { flops: false }), (e: Error) => e instanceof UserError && e.message.includes('foundation.ckpt.safetensors: not a safetensors file'));
    mkdirSync(path.join(dir, 'empty'));
    const r = lorkd(['report', '--run', path.join(dir, 'empty')], { timeoutMs: 60_000 });
    assert.equal(r.status, 2);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^lorkd: .*empty holds no results\.json/);
    const both = lorkd(['report', '--run', RUN, '--compare', COMPARE], { timeoutMs: 60_000 });
    assert.equal(both.status, 2);
    assert.match(both.stderr, /exactly one of --run DIR or --compare DIR/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
