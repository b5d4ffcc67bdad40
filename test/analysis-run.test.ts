// lorkd analyze on real network files: comparison folders grouped by run folder, CKA and MIG of
// groups of experts, the Grad-CAM figure (PNG per image, Grad-CAM = CAM), and the CLI's JSON.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { UserError, manualSeed, memory } from '../src/tensor/index.js';
import { createModel } from '../src/models/registry.js';
import { saveExpertFile } from '../src/export/expert-file.js';
import { loadTasks } from '../src/data/medmnist.js';
import { discoverGroups, groupCka, groupMig, probeSet } from '../src/experiments/analysis.js';
import { gradcamFigure } from '../src/experiments/gradcam.js';
import { createProgress } from '../src/experiments/progress.js';
import { KfExpert, saveKfExpert } from '../src/experiments/methods/kf-expert.js';
import { writeTaskNpz, lorkd } from './helpers/pipeline.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-analysis-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const ARCH = 'shufflenet_v2_x0_5';

// Two tasks, and a comparison folder: method "a" has one expert per task, method "b" one network
// copied for both tasks (identical features: CKA 1).
const taskA = path.join(dir, 'alpha.npz');
const taskB = path.join(dir, 'beta.npz');
writeTaskNpz(taskA, { classes: 2, sizes: { train: 2, val: 2, test: 10 }, seed: 1 });
writeTaskNpz(taskB, { classes: 3, sizes: { train: 3, val: 3, test: 12 }, seed: 2 });
const cmp = path.join(dir, 'cmp');
function expert(file: string, task: string, classes: number, seed: number): void {
  manualSeed(seed);
  const m = createModel(ARCH, { numClasses: classes });
  mkdirSync(path.dirname(file), { recursive: true });
  saveExpertFile(file, m, { model: ARCH, task, classNames: Array.from({ length: classes }, (_, i) => `c${i}`), inputSize: 32, channels: 3, resize: 'bilinear', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  m.dispose();
}
expert(path.join(cmp, 'a', 'seed-0', 'alpha.safetensors'), 'alpha', 2, 10);
expert(path.join(cmp, 'a', 'seed-0', 'beta.safetensors'), 'beta', 3, 11);
expert(path.join(cmp, 'b', 'seed-0', 'alpha.safetensors'), 'alpha', 2, 12);
expert(path.join(cmp, 'b', 'seed-0', 'beta.safetensors'), 'beta', 3, 12); // same seed: same backbone
writeFileSync(path.join(cmp, 'a', 'seed-0', 'notes.safetensors'), 'not a network');
// Method "c": KF's deployed pair (CKN + TSN) for task alpha.
{
  manualSeed(13);
  const kf = new KfExpert(ARCH, ARCH, 2, 3);
  mkdirSync(path.join(cmp, 'c', 'seed-0'), { recursive: true });
  saveKfExpert(path.join(cmp, 'c', 'seed-0', 'alpha.safetensors'), kf, { cknModel: ARCH, tsnModel: ARCH, task: 'alpha', classNames: ['c0', 'c1'], inputSize: 32, resize: 'bilinear', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], channels: 3 });
  kf.dispose();
}
writeFileSync(path.join(cmp, 'compare.json'), JSON.stringify({ tasks: [taskA, taskB] }));

test('comparison folders: expert files grouped by folder, other files ignored', () => {
  const g = discoverGroups(cmp);
  assert.deepEqual(g.map((x) => x.label), [path.join('a', 'seed-0'), path.join('b', 'seed-0'), path.join('c', 'seed-0')]);
  assert.deepEqual(g[0]!.files.map((f) => path.basename(f)), ['alpha.safetensors', 'beta.safetensors']);
  assert.throws(() => discoverGroups(path.join(dir, 'none')), (e: unknown) => e instanceof UserError && !e.message.includes('\n'));
});

test('CKA between a group\'s networks: 1 for identical backbones, below 1 for different ones; MIG in [0, 1]', () => {
  const before = memory().liveTensors;
  const probe = probeSet(loadTasks([taskA, taskB]), 8);
  assert.deepEqual(probe.map((t) => t.splits.test.n), [8, 8]);
  const [ga, gb] = discoverGroups(cmp);
  const ca = groupCka(ga!, probe);
  const cb = groupCka(gb!, probe);
  assert.equal(ca.n, 16);
  assert.deepEqual(ca.networks.map((n) => n.name), ['alpha', 'beta']);
  assert.ok(Math.abs(cb.matrix[0]![1]! - 1) < 1e-9, `identical backbones give CKA ${cb.matrix[0]![1]}`);
  assert.ok(ca.matrix[0]![1]! < 0.999 && ca.matrix[0]![1]! > 0, `different backbones give CKA ${ca.matrix[0]![1]}`);
  assert.equal(ca.matrix[0]![1], ca.matrix[1]![0]);
  const m = groupMig(ga!, probe);
  assert.deepEqual(m.networks.map((n) => n.task), ['alpha', 'beta']);
  assert.deepEqual(m.factors.map((f) => f.factor), ['task', 'class']);
  assert.ok(Math.abs(m.factors[0]!.entropy - Math.log(2)) < 1e-12, 'two balanced tasks');
  assert.ok(m.mig! >= 0 && m.mig! <= 1, `MIG ${m.mig}`);
  assert.equal(m.n, 16);
  // KF's pair: its features are the CKN's and the TSN's, concatenated.
  const kf = groupMig(discoverGroups(cmp)[2]!, probe);
  assert.equal(kf.latents, 2 * 1024);
  assert.ok(kf.mig! >= 0 && kf.mig! <= 1);
  assert.equal(memory().liveTensors, before, 'no tensors leaked');
});

test('Grad-CAM figure: one PNG per image (image + one panel per network), maps agree with CAM', () => {
  const imgDir = path.join(dir, 'imgs');
  mkdirSync(imgDir, { recursive: true });
  for (const [i, v] of [30, 200].entries()) {
    const png = new PNG({ width: 20, height: 20 });
    for (let p = 0; p < 400; p++) png.data.set([v, (p * 5) % 256, 100, 255], 4 * p);
    writeFileSync(path.join(imgDir, `im${i}.png`), PNG.sync.write(png));
  }
  const models = [path.join(cmp, 'a', 'seed-0', 'alpha.safetensors'), path.join(cmp, 'b', 'seed-0', 'beta.safetensors')];
  const out = path.join(dir, 'cam');
  const r = gradcamFigure({ models, inputs: [imgDir], out, size: 96, progress: createProgress({ quiet: true }) });
  assert.equal(r.images.length, 2);
  for (const im of r.images) {
    const png = PNG.sync.read(readFileSync(im.png));
    assert.equal(png.width, 3 * 96 + 2 * 4);
    assert.equal(png.height, 96);
    assert.equal(im.panels.length, 2);
    for (const p of im.panels) assert.ok(p.cam_max_diff !== null && p.cam_max_diff < 1e-4, `Grad-CAM vs CAM differ by ${p.cam_max_diff}`);
    assert.ok(['c0', 'c1'].includes(im.panels[0]!.class));
  }
  assert.deepEqual(JSON.parse(readFileSync(path.join(out, 'gradcam.json'), 'utf8')).images.length, 2);
});

test('lorkd analyze cka/mig --compare: JSON files and --json output; one-line errors', () => {
  const r = lorkd(['analyze', 'cka', '--compare', cmp, '--per-task', '4', '--quiet', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { groups: { matrix: number[][] }[]; file: string; tasks: string[] };
  assert.deepEqual(j.tasks, ['alpha', 'beta'], 'tasks from compare.json');
  assert.equal(j.groups.length, 3);
  assert.deepEqual(JSON.parse(readFileSync(path.join(cmp, 'cka.json'), 'utf8')).groups.length, 3);
  const m = lorkd(['analyze', 'mig', '--models', path.join(cmp, 'a', 'seed-0', 'alpha.safetensors'), '--data', taskA, '--per-task', '6', '--out', path.join(dir, 'mig'), '--quiet', '--json']);
  assert.equal(m.status, 0, m.stderr);
  const mj = JSON.parse(readFileSync(path.join(dir, 'mig', 'mig.json'), 'utf8')) as { groups: { factors: { factor: string; gap: number | null }[] }[] };
  assert.equal(mj.groups[0]!.factors[0]!.gap, null, 'one task: the task factor is constant');
  const bad = lorkd(['analyze', 'mig', '--models', path.join(dir, 'missing.safetensors')]);
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
});
