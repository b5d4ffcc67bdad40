// `lorkd demo` on its default suite, the six bundled tasks, with a tiny budget (1 + 1 epochs, input
// 16): it ends with one JSON line (mean accuracies, 6 tasks, 6 expert files) and a report whose every section
// has data, but the two that need seeds or ranks (one line naming lorkd compare); run again on the
// same --out it resumes without training and reports the same numbers.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { lorkdOk, lastJson, readRawSafetensors } from './helpers/pipeline.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-demo-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const OUT = path.join(dir, 'demo');
const ARGS = ['demo', '--json', '--epochs', '1', '--foundation-epochs', '1', '--input', '16', '--out', OUT];
const TASKS = ['breastmnist', 'pneumoniamnist', 'retinamnist', 'bloodpbc', 'kneeoa', 'braintumor'];

interface DemoJson {
  lorkd_mean_accuracy: number;
  foundation_mean_accuracy: number;
  foundation_mean_accuracy_restricted: number;
  per_task: { task: string; foundation_accuracy: number; foundation_restricted_accuracy: number; lorkd_accuracy: number; lorkd_auc: number; foundation_auc: number }[];
  experts: string[];
  results_file: string;
  run_dir: string;
  seconds: number;
}

const unit = (x: unknown, what: string) => assert.ok(typeof x === 'number' && x >= 0 && x <= 1, `${what} = ${String(x)} must be a number in [0, 1]`);

test('lorkd demo: a JSON line with the results and 6 experts (its default suite is med6); a second run resumes without training', { timeout: 600_000 }, (t) => {
  const t0 = performance.now();
  const first = lorkdOk(ARGS);
  const s1 = (performance.now() - t0) / 1000;
  const r = lastJson<DemoJson>(first.stdout);
  unit(r.lorkd_mean_accuracy, 'lorkd_mean_accuracy');
  unit(r.foundation_mean_accuracy, 'foundation_mean_accuracy');
  unit(r.foundation_mean_accuracy_restricted, 'foundation_mean_accuracy_restricted');
  assert.deepEqual(r.per_task.map((p) => p.task), TASKS);
  for (const p of r.per_task) for (const k of ['foundation_accuracy', 'foundation_restricted_accuracy', 'lorkd_accuracy', 'lorkd_auc', 'foundation_auc'] as const) unit(p[k], `${p.task} ${k}`);
  const mean = (k: 'lorkd_accuracy' | 'foundation_accuracy') => r.per_task.reduce((a, p) => a + p[k], 0) / TASKS.length;
  assert.ok(Math.abs(r.lorkd_mean_accuracy - mean('lorkd_accuracy')) < 1e-12, 'lorkd_mean_accuracy is the mean of the tasks');
  assert.ok(Math.abs(r.foundation_mean_accuracy - mean('foundation_accuracy')) < 1e-12, 'foundation_mean_accuracy is the mean of the tasks');
  assert.equal(r.experts.length, TASKS.length);
  r.experts.forEach((f, i) => {
    assert.ok(existsSync(f), f);
    assert.equal(path.basename(f), `${TASKS[i]}.safetensors`);
    const m = readRawSafetensors(f).metadata;
    assert.equal(m.task, TASKS[i]);
    assert.equal(m.input_size, '16');
  });
  assert.equal(path.resolve(r.run_dir), path.resolve(OUT));
  const saved = JSON.parse(readFileSync(r.results_file, 'utf8')) as { lorkd: { mean_accuracy: number }; experts: string[] };
  assert.equal(saved.lorkd.mean_accuracy, r.lorkd_mean_accuracy);
  assert.deepEqual(saved.experts, r.experts);
  checkReport();
  const weights = ['foundation.safetensors', 'decomposition.safetensors'].map((f) => readFileSync(path.join(OUT, f)));

  const t1 = performance.now();
  const second = lorkdOk(ARGS);
  const s2 = (performance.now() - t1) / 1000;
  t.diagnostic(`first run ${s1.toFixed(1)} s, second (resumed) run ${s2.toFixed(1)} s`);
  const again = lastJson<DemoJson>(second.stdout);
  assert.match(second.stderr, /\[foundation\] resuming after epoch 1\/1/);
  assert.match(second.stderr, /\[decompose\] resuming after epoch 1\/1/);
  assert.match(second.stderr, /\[decompose\] teacher outputs from cache/);
  assert.doesNotMatch(second.stderr, /epoch 1\/1 \d+\/\d+/, 'no training step in the second run');
  const { seconds: _a, ...one } = r;
  const { seconds: _b, ...two } = again;
  assert.deepEqual(two, one, 'the same numbers and files');
  ['foundation.safetensors', 'decomposition.safetensors'].forEach((f, i) => assert.ok(readFileSync(path.join(OUT, f)).equals(weights[i]!), `${f} is unchanged`));
  assert.ok(again.seconds < r.seconds, `the resumed run is faster (${again.seconds.toFixed(1)} s vs ${r.seconds.toFixed(1)} s)`);
});

/** Every section of the demo's report has data, but paired differences and Table 3: one line each naming `lorkd compare`. */
function checkReport(): void {
  const html = readFileSync(path.join(OUT, 'report.html'), 'utf8');
  const sections = [...html.matchAll(/<section id="(\w+)" class="([\w-]+)">([\s\S]*?)<\/section>/g)];
  assert.deepEqual(sections.map((s) => s[1]), ['table1', 'paired', 'table2', 'table3', 'table4', 'training', 'gradcam', 'mig', 'cka']);
  for (const [, id, cls, body] of sections) {
    if (id === 'paired' || id === 'table3') {
      assert.equal(cls, 'no-data', id);
      assert.match(body!, /<h2>[^<]+<\/h2><p class="missing needs">A single run has one [^<]*<code>lorkd compare [^<]+<\/code>[^<]*<\/p>$/, `${id}: one line naming lorkd compare`);
    } else assert.equal(cls, 'has-data', `section ${id} has data`);
  }
  assert.doesNotMatch(html, /No data for this section yet/);
  // what filled them: Grad-CAM strips (2 test images per task: input, foundation, the task's expert), MIG, CKA, transfer
  const g = JSON.parse(readFileSync(path.join(OUT, 'gradcam', 'gradcam.json'), 'utf8')) as { images: { input: string; panels: { model: string }[] }[] };
  assert.equal(g.images.length, 2 * TASKS.length);
  g.images.forEach((im, i) => {
    const task = TASKS[Math.floor(i / 2)]!;
    assert.ok(path.basename(im.input).startsWith(`${task}-`), im.input);
    assert.deepEqual(im.panels.map((p) => path.basename(p.model)), ['foundation.safetensors', `${task}.safetensors`]);
  });
  assert.equal((html.match(/<div class="strip">/g) ?? []).length, 2 * TASKS.length, 'one strip per image in the report');
  const mig = JSON.parse(readFileSync(path.join(OUT, 'mig.json'), 'utf8')) as { groups: { label: string; mig: number }[] };
  assert.deepEqual(mig.groups.map((x) => x.label), ['.', 'experts']);
  for (const x of mig.groups) unit(x.mig, `MIG of ${x.label}`);
  const cka = JSON.parse(readFileSync(path.join(OUT, 'cka.json'), 'utf8')) as { groups: { networks: { name: string }[]; matrix: number[][] }[] };
  assert.deepEqual(cka.groups[0]!.networks.map((x) => x.name), ['foundation', ...TASKS]);
  cka.groups[0]!.matrix.forEach((row, i) => row.forEach((v, j) => (i === j ? assert.equal(v, 1) : unit(v, `CKA ${i},${j}`))));
  for (const label of ['lorkd', 'baseline']) {
    const t = JSON.parse(readFileSync(path.join(OUT, 'transfer', label, 'transfer.json'), 'utf8')) as { shots: number; runs: { accuracy: number }[]; data: { name: string } };
    assert.equal(t.shots, 5);
    assert.equal(t.data.name, 'mednist');
    assert.equal(t.runs.length, 3, `${label}: three fine-tuning seeds`);
  }
}
