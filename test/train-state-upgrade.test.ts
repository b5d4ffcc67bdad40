// A training checkpoint written before the per-task factors (each expert conv's factors and their
// momentum stacked in one (T, ...) parameter) resumes: model weights and SGD momentum come back
// bit-identical to the state that was stacked.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Tensor, randn, stack, tidy, manualSeed, memory } from '../src/tensor/index.js';
import { saveSafetensors, loadSafetensors } from '../src/io/safetensors.js';
import { SGD } from '../src/optim/index.js';
import { DecompositionModel, Routing } from '../src/lorkd/index.js';
import { saveTrainState, loadTrainState } from '../src/experiments/train-state.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-upgrade-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const TASKS = ['a', 'b', 'c'].map((name) => ({ name, classNames: ['x', 'y'] }));
const build = () => new DecompositionModel({ model: 'shufflenet_v2_x0_5', tasks: TASKS, rank: 2, strategy: 'fused' });
const bytes = (t: Tensor) => tidy(() => Buffer.from((t.contiguous().toArray() as Float32Array).buffer));

test('a stacked-layout training checkpoint loads: weights and momentum bit-identical', () => {
  manualSeed(1);
  const dm = build();
  const opt = new SGD(dm.parameters(), { lr: 0.1, momentum: 0.9 });
  const routing = new Routing([2, 1, 1]);
  for (let i = 0; i < 2; i++) {
    opt.zeroGrad();
    tidy(() => dm.featuresSorted(randn([4, 3, 16, 16]), routing, 'fused').pow(2).mean().backward());
    opt.step();
  }
  routing.dispose();
  const file = path.join(dir, 'new.safetensors');
  saveTrainState(file, dm, opt, null, { epoch: 3, extra: {} });
  // Rewrite it as main's code wrote it: one stacked parameter per conv, optimizer indices collapsed.
  const old = path.join(dir, 'old.safetensors');
  tidy(() => {
    const { tensors, metadata } = loadSafetensors(file);
    const names = dm.namedParameters().map(([n]) => n);
    const stackedName = (n: string) => n.replace(/\.expert([AB])\.[^.]+$/, '.expert$1');
    const oldNames = [...new Set(names.map(stackedName))];
    const out = new Map<string, Tensor>();
    for (const [k, v] of tensors) if (!/\.expert[AB]\./.test(k) && !k.startsWith('optim.')) out.set(k, v);
    oldNames.forEach((o, j) => {
      const parts = names.map((n, i) => [n, i] as const).filter(([n]) => stackedName(n) === o);
      const join = (key: (i: number) => string) => (parts.length === 1 ? tensors.get(key(parts[0]![1]))! : stack(parts.map(([, i]) => tensors.get(key(i))!)));
      if (parts.length > 1) out.set(`model.${o}`, join((i) => `model.${names[i]}`));
      if (tensors.has(`optim.state.${parts[0]![1]}.momentum_buffer`)) out.set(`optim.state.${j}.momentum_buffer`, join((i) => `optim.state.${i}.momentum_buffer`));
    });
    const groups = (JSON.parse(metadata.optimizer_groups!) as { params: number[] }[]).map((g) => ({ ...g, params: oldNames.map((_, j) => j) }));
    saveSafetensors(old, out, { ...metadata, optimizer_groups: JSON.stringify(groups) });
    for (const t of tensors.values()) t.dispose();
  });
  const live = memory().liveTensors;
  const back = build();
  const opt2 = new SGD(back.parameters(), { lr: 0.5, momentum: 0.5 });
  const state = loadTrainState(old, back, opt2, null);
  assert.equal(state.epoch, 3);
  const want = new Map(dm.namedParameters());
  for (const [n, p] of back.namedParameters()) assert.ok(bytes(p).equals(bytes(want.get(n)!)), n);
  const a = opt.stateDict();
  const b = opt2.stateDict();
  assert.deepEqual([...b.tensors.keys()].sort(), [...a.tensors.keys()].sort());
  for (const [k, t] of a.tensors) assert.ok(bytes(b.tensors.get(k)!).equals(bytes(t)), k);
  [...a.tensors.values(), ...b.tensors.values()].forEach((t) => t.dispose());
  opt2.dispose();
  back.dispose();
  assert.equal(memory().liveTensors, live, 'the split views are freed');
  opt.dispose();
  dm.dispose();
});
