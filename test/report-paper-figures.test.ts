// The paper's MedMNIST figures beside ours on Table 1's chart, only where the task is the same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { paperAccuracy } from '../src/report/paper-figures.js';
import { taskAccuracyChart } from '../src/report/charts.js';
import { renderSvg } from '../src/report/render.js';
import { emptyStudy, type MethodRow } from '../src/report/study.js';

const stat = (mean: number) => ({ mean, ci95: [mean - 0.02, mean + 0.02] as [number, number], runs: [mean] });
const row = (name: string, tasks: string[]): MethodRow => ({
  name, params_training: null, params_deployment: null, flops_training: null, flops_deployment: null,
  per_task: tasks.map((task, i) => ({ task, accuracy: stat(0.6 + 0.05 * i), auc: null, n: null })), mean_accuracy: stat(0.7), mean_auc: null,
});

test("paperAccuracy: the paper's MedMNIST column for the same task, by method key; null elsewhere", () => {
  const pct = (m: string, t: string) => (paperAccuracy(m, t)! * 100).toFixed(2);
  assert.equal(pct('lorkd', 'breastmnist'), '87.18');
  assert.equal(pct('lorkd-r8', 'retinamnist'), '78.60');
  assert.equal(pct('foundation (task classes)', 'bloodpbc'), '50.37');
  assert.equal(pct('aligned-mtl', 'BloodMNIST'), '95.44');
  assert.equal(paperAccuracy('lorkd', 'pneumoniamnist'), null, 'the paper has no PneumoniaMNIST column');
  assert.equal(paperAccuracy('kneeoa-net', 'breastmnist'), null, 'unknown method');
});

test("Table 1's chart: a diamond per (method, same task) with the paper's figure, a legend and a caption naming its budget", async () => {
  const tasks = ['breastmnist', 'pneumoniamnist', 'bloodpbc'];
  const study = { ...emptyStudy('compare', 'x', 'x'), tasks, methods: [row('lorkd', tasks), row('mtl', tasks)] };
  const chart = taskAccuracyChart(study)!;
  const values = (chart.spec as { data: { values: { task: string; method: string; paper: number | null }[] } }).data.values;
  assert.deepEqual(values.filter((v) => v.paper !== null).map((v) => `${v.method}/${v.task}/${(v.paper! * 100).toFixed(2)}`), ['LoRKD/breastmnist/87.18', 'LoRKD/bloodpbc/96.26', 'MTL/breastmnist/83.33', 'MTL/bloodpbc/95.67']);
  assert.match(chart.caption, /its budget, not this study's/);
  const svg = await renderSvg(chart.spec, chart.id);
  assert.match(svg, /paper's MedMNIST figure \(its budget\)/, 'the legend names the diamonds');
  assert.equal((svg.match(/aria-roledescription="point"/g) ?? []).length, 4, 'one diamond per method and same task');

  const none = taskAccuracyChart({ ...study, tasks: ['pneumoniamnist'], methods: [row('lorkd', ['pneumoniamnist'])] })!;
  assert.doesNotMatch(none.caption, /diamond/);
  assert.doesNotMatch(await renderSvg(none.spec, none.id), /paper's MedMNIST/);
});
