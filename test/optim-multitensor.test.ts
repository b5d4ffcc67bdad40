// The one-native-call-per-group optimiser steps (native/src/optim.cc) equal the composed
// per-tensor steps they replaced (reproduced here with tensor ops, in their order) bit for bit
// over several steps: SGD with momentum, dampening, Nesterov and weight decay; AdamW with and
// without amsgrad; with a checkpoint round trip (stateDict / loadStateDict) in the middle and a
// parameter that has no gradient on some steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, tidy, noGrad, keep, zerosLike } from '../src/tensor/index.js';
import { SGD, AdamW, type Optimizer, type OptimizerOptions } from '../src/optim/index.js';
import { randArray } from './helpers/random.js';

const SHAPES = [[4, 3, 1, 1], [7], [2, 5]];
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
const params = (): Tensor[] => SHAPES.map((s, i) => tensor(randArray(numel(s), 20 + i, -1, 1), s).requiresGrad_(true));
// Parameter 1 has no gradient on step 2 (its state then lags one step, as in PyTorch).
const gradsAt = (t: number): (number[] | null)[] => SHAPES.map((s, i) => (i === 1 && t === 2 ? null : randArray(numel(s), 500 + 11 * t + i, -2, 2)));

function setGrads(ps: Tensor[], t: number): void {
  gradsAt(t).forEach((g, i) => (ps[i]!.grad = g ? tensor(g, SHAPES[i]!) : null));
}

/** SGD as the composed TypeScript step did it, per tensor. */
function sgdReference(ps: Tensor[], o: { lr: number; momentum: number; dampening: number; nesterov: boolean; weightDecay: number }, steps: number): number[][] {
  const bufs = new Map<number, Tensor>();
  for (let t = 0; t < steps; t++) {
    const grads = gradsAt(t);
    noGrad(() =>
      tidy(() =>
        ps.forEach((p, i) => {
          const g = grads[i];
          if (!g) return;
          let d = tensor(g, SHAPES[i]!);
          if (o.weightDecay !== 0) d = d.clone().add_(p, o.weightDecay);
          let update = d;
          if (o.momentum !== 0) {
            let buf = bufs.get(i);
            if (!buf) bufs.set(i, (buf = keep(d.clone())));
            else buf.mul_(o.momentum).add_(d, 1 - o.dampening);
            if (o.nesterov) d = d.clone().add_(buf, o.momentum);
            update = o.nesterov ? d : buf;
          }
          p.add_(update, -o.lr);
        }),
      ),
    );
  }
  for (const b of bufs.values()) b.dispose();
  return ps.map((p) => Array.from(p.toArray() as Float32Array));
}

/** AdamW as the composed TypeScript step did it, per tensor. */
function adamwReference(ps: Tensor[], o: { lr: number; betas: [number, number]; eps: number; weightDecay: number; amsgrad: boolean }, steps: number): number[][] {
  const st = new Map<number, { step: number; m: Tensor; v: Tensor; vmax: Tensor }>();
  const [b1, b2] = o.betas;
  for (let t = 0; t < steps; t++) {
    const grads = gradsAt(t);
    noGrad(() =>
      tidy(() =>
        ps.forEach((p, i) => {
          const gv = grads[i];
          if (!gv) return;
          const g = tensor(gv, SHAPES[i]!);
          let s = st.get(i);
          if (!s) st.set(i, (s = { step: 0, m: keep(zerosLike(p)), v: keep(zerosLike(p)), vmax: keep(zerosLike(p)) }));
          s.step++;
          if (o.weightDecay !== 0) p.mul_(1 - o.lr * o.weightDecay);
          s.m.mul_(b1).add_(g, 1 - b1);
          s.v.mul_(b2).addcmul_(g, g, 1 - b2);
          let second = s.v;
          if (o.amsgrad) {
            const mx = keep(s.vmax.maximum(s.v));
            s.vmax.dispose();
            s.vmax = mx;
            second = mx;
          }
          const denom = second.clone().sqrt().div(Math.sqrt(1 - b2 ** s.step)).add(o.eps);
          p.addcdiv_(s.m, denom, -(o.lr / (1 - b1 ** s.step)));
        }),
      ),
    );
  }
  for (const s of st.values()) [s.m, s.v, s.vmax].forEach((x) => x.dispose());
  return ps.map((p) => Array.from(p.toArray() as Float32Array));
}

/** `steps` steps of opt over ps, with the optimiser saved and restored into a new one after `cut`. */
function runWithCheckpoint(make: (ps: Tensor[]) => Optimizer<OptimizerOptions>, steps: number, cut: number): number[][] {
  const ps = params();
  let opt = make(ps);
  for (let t = 0; t < steps; t++) {
    if (t === cut) {
      const saved = opt.stateDict();
      const next = make(ps);
      next.loadStateDict(saved);
      opt.dispose();
      opt = next;
    }
    setGrads(ps, t);
    opt.step();
  }
  const out = ps.map((p) => Array.from(p.toArray() as Float32Array));
  opt.dispose();
  ps.forEach((p) => p.dispose());
  return out;
}

const SGD_CASES = [
  { lr: 0.1, momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0 },
  { lr: 0.1, momentum: 0.9, dampening: 0, nesterov: true, weightDecay: 1e-2 },
  { lr: 0.05, momentum: 0.8, dampening: 0.3, nesterov: false, weightDecay: 5e-3 },
  { lr: 0.2, momentum: 0, dampening: 0, nesterov: false, weightDecay: 1e-3 },
];
for (const o of SGD_CASES) {
  test(`SGD ${JSON.stringify(o)}: one native call per group equals the per-tensor step bit for bit over 5 steps with a checkpoint`, () => {
    const got = runWithCheckpoint((ps) => new SGD(ps, o), 5, 3);
    const ps = params();
    const want = sgdReference(ps, o, 5);
    ps.forEach((p) => p.dispose());
    assert.deepEqual(got, want);
  });
}

for (const amsgrad of [false, true]) {
  test(`AdamW (amsgrad ${amsgrad}): one native call per group equals the per-tensor step bit for bit over 5 steps with a checkpoint`, () => {
    const o = { lr: 0.01, betas: [0.85, 0.99] as [number, number], eps: 1e-8, weightDecay: 0.05, amsgrad };
    const got = runWithCheckpoint((ps) => new AdamW(ps, o), 5, 2);
    const ps = params();
    const want = adamwReference(ps, o, 5);
    ps.forEach((p) => p.dispose());
    assert.deepEqual(got, want);
  });
}
