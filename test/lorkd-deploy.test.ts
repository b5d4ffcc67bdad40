// Deployment (paper 3.4): parameter fusion into a plain model, the drift-free task knowledge
// switch, the safe switch, and decomposition checkpoints (bit-exact round trip, wrong files).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Tensor, randn, tidy, noGrad, manualSeed, memory, UserError } from '../src/tensor/index.js';
import type { Module } from '../src/nn/module.js';
import { createModel } from '../src/models/index.js';
import { saveSafetensors } from '../src/io/safetensors.js';
import { randomizeDecomposition } from './helpers/random-decomposition.js';
import {
  DecompositionModel,
  DeployedExpert,
  expertModel,
  saveDecomposition,
  loadDecomposition,
  readDecomposition,
  checkpointConfig,
  type TaskSpec,
} from '../src/lorkd/index.js';

const MODEL = 'shufflenet_v2_x1_0';
const TASKS: TaskSpec[] = [
  { name: 'breast', classNames: ['benign', 'malignant'] },
  { name: 'retina', classNames: ['0', '1', '2', '3', '4'] },
  { name: 'pneumonia', classNames: ['normal', 'pneumonia'] },
];
const SIZE = 32;

function build(seed = 1): DecompositionModel {
  manualSeed(seed);
  const dm = new DecompositionModel({ model: MODEL, tasks: TASKS, rank: 4, loraAlpha: 16, strategy: 'fused' });
  return randomizeDecomposition(dm);
}

/** dtype, shape and a hash of the bytes of every state-dict entry: equal snapshots mean bit-identical state. */
function snapshot(m: Module): Map<string, string> {
  return tidy(() => {
    const out = new Map<string, string>();
    for (const [k, t] of m.stateDict()) out.set(k, `${t.dtype}[${t.shape}] ${createHash('sha256').update(t.toBytes()).digest('hex')}`);
    return out;
  });
}

const maxAbsDiff = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).abs().amax().item());
const oneLine = (e: unknown): boolean => e instanceof UserError && !e.message.includes('\n');

describe('parameter fusion: expertModel', () => {
  const dm = build();
  dm.eval();
  after(() => dm.dispose());

  test('task t\'s expert equals the decomposition model on task-t inputs (eval, float32), and the dm is unchanged', () => {
    const before = snapshot(dm);
    manualSeed(2);
    tidy(() => {
      const x = randn([4, 3, SIZE, SIZE]);
      for (let t = 0; t < TASKS.length; t++) {
        const expert = expertModel(dm, t);
        assert.equal(expert.training, false, 'expert inherits eval mode');
        assert.equal(expert.numClasses, TASKS[t]!.classNames.length);
        const want = noGrad(() => dm.forwardTasks(x, [t, t, t, t]).logits[t]!);
        const got = noGrad(() => expert.forward(x));
        const d = maxAbsDiff(got, want);
        assert.ok(d <= 1e-5, `task ${t}: max |diff| ${d}`);
        // The experts really differ: task t's expert on another task's head/weights would not match.
        if (t > 0) {
          const other = noGrad(() => dm.forwardTasks(x, [0, 0, 0, 0]).features);
          assert.ok(maxAbsDiff(noGrad(() => expert.forwardFeatures(x)), other) > 1e-3, `task ${t} expert equals task 0's`);
        }
        expert.dispose();
      }
    });
    assert.deepEqual(snapshot(dm), before, 'expertModel changed the decomposition model');
  });

  test('by task name; unknown tasks are refused', () => {
    const a = expertModel(dm, 'retina');
    const b = expertModel(dm, 1);
    assert.deepEqual(snapshot(a), snapshot(b));
    a.dispose();
    b.dispose();
    assert.throws(() => expertModel(dm, 'skin'), (e: Error) => oneLine(e) && /unknown task "skin"; tasks: breast, retina, pneumonia/.test(e.message));
    assert.throws(() => expertModel(dm, 3), (e: Error) => oneLine(e) && /task 3 out of range/.test(e.message));
  });

  test('a deployed expert has exactly the parameters of a plain shufflenet_v2_x1_0 with an n_t-class head', () => {
    for (let t = 0; t < TASKS.length; t++) {
      const expert = expertModel(dm, t);
      const plain = createModel(MODEL, { numClasses: TASKS[t]!.classNames.length });
      assert.equal(expert.numParameters(), plain.numParameters());
      assert.deepEqual(
        [...snapshot(expert).entries()].map(([k, v]) => `${k} ${v.split(' ')[0]}`),
        [...snapshot(plain).entries()].map(([k, v]) => `${k} ${v.split(' ')[0]}`),
        'same keys, dtypes and shapes',
      );
      expert.dispose();
      plain.dispose();
    }
    // ... and fewer than the decomposition model, by the experts and the other heads.
    const expert = expertModel(dm, 0);
    const experts = dm.expertConvs().reduce((s, [, c]) => s + c.getModule('expertA').numParameters() + c.getModule('expertB').numParameters(), 0);
    const otherHeads = [1, 2].reduce((s, t) => s + dm.head(t).numParameters(), 0);
    assert.equal(dm.numParameters() - expert.numParameters(), experts + otherHeads);
    expert.dispose();
  });
});

describe('task knowledge switch: DeployedExpert', () => {
  const dm = build(3);
  dm.eval();
  after(() => dm.dispose());

  test('t -> t\' -> t, 50 times, is bit-identical to the first deployment; each switch equals a fresh expertModel', () => {
    const dmBefore = snapshot(dm);
    const de = DeployedExpert.from(dm, 0);
    const first = snapshot(de.model);
    const fresh = TASKS.map((_, t) => {
      const m = expertModel(dm, t);
      const s = snapshot(m);
      m.dispose();
      return s;
    });
    assert.deepEqual(first, fresh[0]);
    for (let i = 0; i < 50; i++) {
      de.switchTo(1); // 2 -> 5 classes: the head is re-created
      if (i === 0) {
        assert.equal(de.task, 1);
        assert.equal(de.taskName, 'retina');
        assert.equal(de.model.numClasses, 5);
        assert.deepEqual(snapshot(de.model), fresh[1], 'switch 0 -> 1 equals expertModel(dm, 1)');
      }
      de.switchTo(0);
    }
    assert.deepEqual(snapshot(de.model), first, 'drift after 50 round trips');
    de.switchTo('pneumonia').switchTo(1).switchTo(2);
    assert.deepEqual(snapshot(de.model), fresh[2], 'after 0 -> 2 -> 1 -> 2');
    assert.deepEqual(snapshot(dm), dmBefore, 'the decomposition model is unchanged');
    de.dispose();
  });

  test('the deployed expert runs its task like the decomposition model; mixed-task batches are refused', () => {
    const de = DeployedExpert.from(dm, 'retina');
    manualSeed(4);
    tidy(() => {
      const x = randn([2, 3, SIZE, SIZE]);
      const want = noGrad(() => dm.forwardTasks(x, [1, 1]).logits[1]!);
      assert.ok(maxAbsDiff(noGrad(() => de.forward(x, [1, 1])), want) <= 1e-5);
      assert.throws(() => de.forward(x, [1, 2]), (e: Error) => oneLine(e) && /holds task "retina" \(1\) but row 1 is task 2/.test(e.message));
      assert.throws(() => de.forward(x, [1]), (e: Error) => oneLine(e) && /1 task ids for a batch of 2/.test(e.message));
    });
    const s = snapshot(de.model);
    assert.equal(de.switchTo(1), de);
    assert.equal(de.switchTo('retina'), de);
    assert.deepEqual(snapshot(de.model), s, 'switching to the current task changes nothing');
    de.dispose();
  });

  test('a safe switch refuses non-finite weights and leaves the model unchanged', () => {
    const bad = build(5);
    const [name, conv] = bad.expertConvs()[7]!;
    noGrad(() => conv.factors(2).b.select(0, 0).fill_(Number.NaN));
    const de = DeployedExpert.from(bad, 1);
    const s = snapshot(de.model);
    assert.throws(() => de.switchTo(2), (e: Error) => oneLine(e) && e.message.includes(`expert "${name}"`) && /non-finite/.test(e.message));
    assert.equal(de.task, 1);
    assert.deepEqual(snapshot(de.model), s, 'a failed switch wrote to the model');
    de.switchTo(0); // the other tasks still switch
    assert.equal(de.task, 0);
    assert.throws(() => expertModel(bad, 'pneumonia'), (e: Error) => oneLine(e) && /non-finite/.test(e.message));
    noGrad(() => bad.head(0).getParameter('bias').fill_(Number.POSITIVE_INFINITY));
    assert.throws(() => expertModel(bad, 0), (e: Error) => oneLine(e) && /head/.test(e.message));
    de.dispose();
    bad.dispose();
  });
});

describe('decomposition checkpoints', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-ckpt-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('round trip is bit-exact (every tensor, the config, the extra metadata), float32 and float64', () => {
    for (const dtype of ['float32', 'float64'] as const) {
      const dm = build(6);
      if (dtype === 'float64') dm.toDtype('float64');
      const file = path.join(dir, `dm-${dtype}.safetensors`);
      saveDecomposition(file, dm, { run: 'test-run' });
      const loaded = readDecomposition(file, { strategy: 'routed' });
      assert.deepEqual(snapshot(loaded.model), snapshot(dm));
      assert.deepEqual(loaded.config, checkpointConfig(dm));
      assert.deepEqual(loaded.model.config, { ...dm.config, strategy: 'routed' });
      assert.equal(loaded.metadata.run, 'test-run');
      assert.equal(loaded.metadata.lorkd_format, 'decomposition');
      assert.deepEqual(JSON.parse(loaded.metadata.config!), {
        model: MODEL,
        tasks: TASKS,
        rank: 4,
        loraAlpha: 16,
        inChannels: 3,
      });
      assert.ok(snapshot(dm).has(`stage2.0.branch2.0.expertA.${TASKS[0]!.name}`) && snapshot(dm).has('heads.1.weight'));
      // Same weights, same function.
      dm.eval();
      loaded.model.eval();
      manualSeed(7);
      tidy(() => {
        const x = randn([3, 3, SIZE, SIZE], { dtype });
        const a = noGrad(() => dm.forwardTasks(x, [2, 0, 1]).features);
        const b = noGrad(() => loaded.model.forwardTasks(x, [2, 0, 1]).features);
        assert.ok(maxAbsDiff(a, b) <= (dtype === 'float64' ? 1e-12 : 1e-5));
      });
      dm.dispose();
      loaded.model.dispose();
    }
  });

  test('wrong files give a one-line UserError naming the file', () => {
    const dm = build(8);
    const good = path.join(dir, 'good.safetensors');
    saveDecomposition(good, dm);
    const expectError = (file: string, pattern: RegExp) =>
      assert.throws(
        () => loadDecomposition(file),
        (e: Error) => oneLine(e) && e.message.startsWith(`${file}:`) && pattern.test(e.message),
        `${path.basename(file)}: expected ${pattern}`,
      );

    // A plain torchvision-named backbone, no lorkd metadata.
    const plainFile = path.join(dir, 'plain.safetensors');
    const plain = createModel(MODEL, { numClasses: 2 });
    tidy(() => saveSafetensors(plainFile, plain.stateDict()));
    plain.dispose();
    expectError(plainFile, /not a lorkd decomposition checkpoint \(no lorkd_format metadata\)/);

    const withMeta = (name: string, meta: Record<string, string>) => {
      const f = path.join(dir, name);
      tidy(() => saveSafetensors(f, dm.stateDict(), meta));
      return f;
    };
    const config = checkpointConfig(dm);
    expectError(withMeta('other-format.safetensors', { lorkd_format: 'baseline' }), /lorkd_format "baseline"/);
    expectError(withMeta('no-config.safetensors', { lorkd_format: 'decomposition' }), /no "config" entry/);
    expectError(withMeta('bad-json.safetensors', { lorkd_format: 'decomposition', config: '{rank: 4' }), /config metadata \(not JSON/);
    // Another shape: the config says rank 8, the tensors have rank 4.
    expectError(
      withMeta('rank.safetensors', { lorkd_format: 'decomposition', config: JSON.stringify({ ...config, rank: 8 }) }),
      /tensors do not fit the checkpoint's config: .*shape mismatch.*expertA\.\w+: checkpoint \[4, \d+\] vs model \[8, \d+\]/,
    );
    // Another task count: missing head and expert shapes.
    expectError(
      withMeta('tasks.safetensors', { lorkd_format: 'decomposition', config: JSON.stringify({ ...config, tasks: config.tasks.slice(0, 2) }) }),
      /unexpected key.*heads\.2\.weight/,
    );
    expectError(withMeta('model.safetensors', { lorkd_format: 'decomposition', config: JSON.stringify({ ...config, model: 'vgg16' }) }), /unknown model "vgg16"/);
    expectError(withMeta('rank0.safetensors', { lorkd_format: 'decomposition', config: JSON.stringify({ ...config, rank: 0 }) }), /"rank" must be a positive integer/);

    const garbage = path.join(dir, 'garbage.safetensors');
    writeFileSync(garbage, 'this is not a safetensors file');
    expectError(garbage, /header length/);
    expectError(path.join(dir, 'missing.safetensors'), /cannot read/);

    assert.throws(() => saveDecomposition(path.join(dir, 'x.safetensors'), dm, { config: 'mine' }), (e: Error) => oneLine(e) && /reserved/.test(e.message));
    // The good file still loads.
    const ok = loadDecomposition(good);
    assert.equal(ok.numTasks, 3);
    ok.dispose();
    dm.dispose();
  });
});

test('fusion, switching, saving and loading (also failed loads) leave no tensor behind', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-mem-'));
  const dm = build(9);
  const file = path.join(dir, 'dm.safetensors');
  const live = memory().liveTensors;
  expertModel(dm, 1).dispose();
  DeployedExpert.from(dm, 0).switchTo(1).switchTo(2).dispose();
  saveDecomposition(file, dm);
  loadDecomposition(file).dispose();
  const wrong = path.join(dir, 'wrong.safetensors');
  tidy(() => saveSafetensors(wrong, dm.stateDict(), { lorkd_format: 'decomposition', config: JSON.stringify({ ...checkpointConfig(dm), rank: 2 }) }));
  assert.throws(() => loadDecomposition(wrong), UserError);
  assert.equal(memory().liveTensors, live);
  dm.dispose();
  rmSync(dir, { recursive: true, force: true });
});
