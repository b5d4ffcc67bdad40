// MoCo-MTL and Aligned-MTL (METHOD.md, "Baselines, concretely"): the gradient transforms against a
// direct float64 computation of the formulas (a loop here, numpy where /usr/bin/python3 has it),
// Aligned-MTL's conditioning, MoCo's state after a few steps and across a resume, and a tiny
// training run of each method (finite, decreasing loss; per-task gradients; deployment).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Tensor, tensor, tidy, noGrad, manualSeed, cat } from '../src/tensor/index.js';
import { loadExpertFile } from '../src/export/expert-file.js';
import { symmetricEigen } from '../src/experiments/methods/eigen.js';
import {
  MocoState, mocoStep, MOCO_DEFAULTS, alignedMtlMatrix, alignedMtlWeights, gram, taskLosses, type MocoOptions,
} from '../src/experiments/methods/shared-gradients.js';
import { createMocoMtl } from '../src/experiments/methods/moco-mtl.js';
import { createAlignedMtl } from '../src/experiments/methods/aligned-mtl.js';
import type { Method } from '../src/experiments/methods/method.js';
import type { MultiTaskNet } from '../src/experiments/methods/multi-task-net.js';
import { assertClose } from './helpers/assert.js';
import { randArray } from './helpers/random.js';
import { runPython, PYTHON } from './helpers/python.js';
import { spawnSync } from 'node:child_process';
import { taskBatch, tinyContext, sgdSteps, assertDecreasing } from './helpers/methods-batch.js';

type Mat = number[][];
const matT = (a: Mat): Mat => a[0]!.map((_, j) => a.map((r) => r[j]!));
const matMul = (a: Mat, b: Mat): Mat => a.map((r) => b[0]!.map((_, j) => r.reduce((s, x, k) => s + x * b[k]![j]!, 0)));
const rowsOf = (flat: number[], n: number): Mat => [...Array(flat.length / n).keys()].map((i) => flat.slice(i * n, (i + 1) * n));
const randMat = (r: number, c: number, seed: number): Mat => rowsOf(randArray(r * c, seed), c);
const g64 = (m: Mat): Tensor => tensor(m.flat(), [m.length, m[0]!.length], { dtype: 'float64' });

const hasNumpy = spawnSync(PYTHON, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;

describe('symmetricEigen (Jacobi)', () => {
  test('reconstructs M = V diag(lambda) V^T with orthonormal V', () => {
    for (const [n, seed] of [[1, 1], [2, 2], [5, 3], [11, 4]] as const) {
      const a = randMat(n, n, seed);
      const m = matMul(a, matT(a)).map((r, i) => r.map((x, j) => x + (i === j ? 0.1 * i : 0)));
      const { values, vectors } = symmetricEigen(m);
      const rec = matMul(matMul(vectors, values.map((l, i) => values.map((_, j) => (i === j ? l : 0)))), matT(vectors));
      assertClose(rec.flat(), m.flat(), { atol: 1e-12, rtol: 1e-12 }, `V L V^T (n=${n})`);
      const vtv = matMul(matT(vectors), vectors);
      assertClose(vtv.flat(), vtv.map((r, i) => r.map((_, j) => (i === j ? 1 : 0))).flat(), { atol: 1e-12 }, `V^T V (n=${n})`);
    }
  });
  test('repeated eigenvalues (I + u u^T) and the zero matrix', () => {
    const u = [1, 2, -1, 0.5];
    const m = u.map((a, i) => u.map((b, j) => a * b + (i === j ? 1 : 0)));
    const vals = symmetricEigen(m).values.sort((x, y) => x - y);
    assertClose(vals, [1, 1, 1, 1 + u.reduce((s, x) => s + x * x, 0)], { atol: 1e-12 }, 'eigenvalues');
    assert.deepEqual(symmetricEigen([[0, 0], [0, 0]]).values, [0, 0]);
  });
});

/** MoCo's update written out on plain arrays (METHOD.md), independently of mocoStep. */
function mocoReference(y: Mat, lambda: number[], step: number, G: Mat, L: number[], rows: number[], o: MocoOptions): { y: Mat; lambda: number[]; step: number; d: number[] } {
  step += 1;
  const b = o.beta / step ** o.betaSigma;
  y = y.map((r) => r.slice());
  rows.forEach((t, i) => {
    const norm = Math.sqrt(G[i]!.reduce((s, x) => s + x * x, 0));
    const g = G[i]!.map((x) => (x / (norm + 1e-8)) * L[i]!);
    y[t] = y[t]!.map((v, k) => v - b * (v - g[k]!));
  });
  const T = y.length;
  const c = o.gamma / step ** o.gammaSigma;
  const z: number[] = [];
  for (let i = 0; i < T; i++) {
    let s = o.rho * lambda[i]!;
    for (let j = 0; j < T; j++) s += y[i]!.reduce((a, v, k) => a + v * y[j]![k]!, 0) * lambda[j]!;
    z.push(lambda[i]! - c * s);
  }
  const mx = Math.max(...z);
  const e = z.map((v) => Math.exp(v - mx));
  const se = e.reduce((a, v) => a + v, 0);
  lambda = e.map((v) => v / se);
  const d = y[0]!.map((_, k) => y.reduce((s, r, t) => s + r[k]! * lambda[t]!, 0));
  return { y, lambda, step, d };
}

describe('MoCo-MTL transform', () => {
  test('y, lambda, step and the shared gradient after a few steps match the formulas (float64)', () => {
    tidy(() => {
      const T = 3;
      const D = 7;
      const state = new MocoState(T, D, 'float64');
      assert.equal(state.step, 0);
      assertClose(state.lambda, [1 / 3, 1 / 3, 1 / 3], { atol: 1e-15 }, 'initial lambda');
      let ref = { y: randMat(T, D, 0).map((r) => r.map(() => 0)), lambda: [1 / 3, 1 / 3, 1 / 3], step: 0, d: [] as number[] };
      const schedule: { rows: number[]; o: Partial<MocoOptions> }[] = [
        { rows: [0, 1, 2], o: {} },
        { rows: [0, 1, 2], o: {} },
        { rows: [0, 2], o: {} }, // task 1 absent: its y row is kept
        { rows: [0, 1, 2], o: { rho: 0.3, gamma: 0.7, beta: 0.9, betaSigma: 0.25 } },
        { rows: [1], o: { gammaSigma: 1 } },
      ];
      schedule.forEach(({ rows, o }, s) => {
        const G = randMat(rows.length, D, 10 + s).map((r, i) => r.map((x) => x * (1 + 3 * i)));
        const L = randArray(rows.length, 20 + s, 0.1, 2);
        const d = mocoStep(state, g64(G), L, o, rows);
        ref = mocoReference(ref.y, ref.lambda, ref.step, G, L, rows, { ...MOCO_DEFAULTS, ...o });
        assert.equal(state.step, ref.step);
        assertClose(state.y, ref.y.flat(), { atol: 1e-13, rtol: 1e-12 }, `y after step ${s + 1}`);
        assertClose(state.lambda, ref.lambda, { atol: 1e-13, rtol: 1e-12 }, `lambda after step ${s + 1}`);
        assertClose(d, ref.d, { atol: 1e-13, rtol: 1e-12 }, `shared gradient of step ${s + 1}`);
      });
      // The weights moved away from uniform, and the absent task's y row stayed as it was.
      assert.ok(Math.max(...ref.lambda) - Math.min(...ref.lambda) > 1e-3, `lambda ${ref.lambda}`);
      state.dispose();
    });
  });
  test('bad shapes are one-line UserErrors', () => {
    tidy(() => {
      const state = new MocoState(2, 3, 'float64');
      assert.throws(() => mocoStep(state, g64([[1, 2]]), [1]), /G must be 2 x 3/);
      assert.throws(() => mocoStep(state, g64([[1, 2, 3], [4, 5, 6]]), [1]), /1 losses for 2/);
      state.dispose();
    });
  });
});

describe('Aligned-MTL transform', () => {
  test('B G has orthogonal rows of equal norm sqrt(lambda_min); alpha = column sums of B', () => {
    tidy(() => {
      for (const [T, D, seed] of [[2, 5, 1], [3, 9, 2], [5, 12, 3]] as const) {
        const G = randMat(T, D, seed).map((r, i) => r.map((x) => x * (1 + i))); // unequal norms
        const { B, alpha, kept } = alignedMtlMatrix(gram(g64(G)));
        assert.equal(kept.length, T);
        const BG = matMul(B, G);
        const C = matMul(BG, matT(BG));
        const lmin = kept[kept.length - 1]!;
        assertClose(C.flat(), C.map((r, i) => r.map((_, j) => (i === j ? lmin : 0))).flat(), { atol: 1e-10 * lmin, rtol: 1e-10 }, `(BG)(BG)^T (T=${T})`);
        // Singular values of the combination matrix B G are all equal: condition number 1.
        const sv = symmetricEigen(C).values.map(Math.sqrt);
        assert.ok(Math.max(...sv) / Math.min(...sv) < 1 + 1e-9, `singular values ${sv}`);
        assertClose(alpha, B[0]!.map((_, j) => B.reduce((s, r) => s + r[j]!, 0)), { atol: 1e-14 }, 'alpha');
        assertClose(alignedMtlWeights(g64(G)), alpha, { atol: 1e-12, rtol: 1e-12 }, 'alignedMtlWeights');
      }
    });
  });
  test('rank-deficient G: the null direction is dropped, the kept singular values are equal', () => {
    tidy(() => {
      const [g1, g2] = randMat(2, 6, 7);
      const G = [g1!, g2!, g1!.map((x, k) => 2 * x - g2![k]!)];
      const { B, kept } = alignedMtlMatrix(gram(g64(G)));
      assert.equal(kept.length, 2);
      const sv = symmetricEigen(matMul(matMul(B, G), matT(matMul(B, G)))).values.sort((a, b) => b - a).map((v) => Math.sqrt(Math.max(v, 0)));
      assertClose(sv, [Math.sqrt(kept[1]!), Math.sqrt(kept[1]!), 0], { atol: 1e-6 * Math.sqrt(kept[0]!) }, 'singular values of B G');
      assert.deepEqual(alignedMtlWeights(g64([[0, 0, 0], [0, 0, 0]])), [0, 0]);
    });
  });
  test('alpha matches numpy (eigh) on random gradients', { skip: hasNumpy ? false : `${PYTHON} has no numpy` }, () => {
    const cases = [randMat(3, 8, 11), randMat(4, 10, 12).map((r, i) => r.map((x) => x * 10 ** (i - 2)))];
    const code = `
import json, sys, numpy as np
out = []
for G in json.loads(sys.argv[1]):
    G = np.array(G, dtype=np.float64)
    M = G @ G.T
    lam, V = np.linalg.eigh(M)
    tol = lam.max() * M.shape[0] * np.finfo(np.float32).eps
    keep = np.argsort(-lam)[: int((lam > tol).sum())]
    lam, V = lam[keep], V[:, keep]
    B = np.sqrt(lam[-1]) * (V @ np.diag(1 / np.sqrt(lam)) @ V.T)
    out.append(B.sum(0).tolist())
print(json.dumps(out))`;
    const want = JSON.parse(runPython(code, [JSON.stringify(cases)])) as number[][];
    tidy(() => cases.forEach((G, i) => assertClose(alignedMtlWeights(g64(G)), want[i]!, { atol: 1e-10, rtol: 1e-9 }, `alpha case ${i}`)));
  });
});

// ------------------------------------------------------------------ the methods on a tiny network
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Flattened gradients of `params` (zeros where none). */
const flatGrads = (params: Tensor[]): Tensor => noGrad(() => cat(params.map((p) => (p.grad ?? p.mul(0)).reshape([-1]))));

function trainSteps(m: Method, steps: number, counts = [3, 4, 2]): number[] {
  const batch = taskBatch(counts);
  try {
    return sgdSteps(m, batch, steps);
  } finally {
    batch.dispose();
  }
}

for (const [name, create] of [['moco-mtl', createMocoMtl], ['aligned-mtl', createAlignedMtl]] as const) {
  test(`${name}: trains (finite, decreasing loss), counts one backbone, deploys task t exactly`, () => {
    manualSeed(0);
    const m = create(tinyContext());
    const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-methods-'));
    dirs.push(dir);
    try {
      // A pass in training mode moves the BN running statistics away from their defaults.
      const warm = taskBatch([3, 4, 2]);
      tidy(() => void m.backward(warm));
      m.module.zeroGrad();
      warm.dispose();
      // Then SGD with BN on its running statistics: on a batch of 9 random images, batch
      // statistics make the loss of a fresh network jump from step to step (measured), which
      // says nothing about the method.
      m.module.eval();
      const losses = trainSteps(m, 5);
      m.module.train();
      assertDecreasing(losses);
      assert.equal(m.params().params_training, 341792, 'x0.5 backbone without fc');
      assert.equal(m.params().params_deployment, m.params().params_training);
      const batch = taskBatch([2, 3, 2]);
      tidy(() => {
        const logits = m.logits(batch);
        assert.equal(m.module.training, true, 'logits() restores the training mode');
        for (let t = 0; t < 3; t++) {
          const d = m.deploy(t);
          try {
            const rows = batch.images.narrow(0, batch.routing.offsets[t]!, batch.routing.counts[t]!);
            assertClose(d.forward(rows), logits[t]!.toNumbers(), { atol: 1e-5 }, `task ${t}`);
            if (t !== 1) continue;
            const file = path.join(dir, 'retina.safetensors');
            d.save(file, { input_size: '16', mean: '[0.5,0.5,0.5]', std: '[0.5,0.5,0.5]' });
            const e = loadExpertFile(file);
            assert.deepEqual(e.meta.classNames, ['0', '1', '2']);
            assert.equal(e.meta.task, 'retina');
            assertClose(noGrad(() => e.model.forward(rows)), logits[t]!.toNumbers(), { atol: 1e-5 }, 'loaded expert');
            e.model.dispose();
          } finally {
            d.dispose();
          }
        }
      });
      batch.dispose();
    } finally {
      m.dispose();
    }
  });
}

describe('gradient plumbing', () => {
  test('aligned-mtl: shared .grad = sum_t alpha_t g_t of separately computed task gradients; heads keep their own', () => {
    manualSeed(2);
    const m = createAlignedMtl(tinyContext());
    const net = m.module as MultiTaskNet;
    const batch = taskBatch([3, 2, 4]);
    try {
      tidy(() => {
        const shared = net.sharedParameters();
        // Reference: one forward and backward per task (fresh graphs; BN in training mode gives
        // the same outputs each time).
        const G: Tensor[] = [];
        const heads: Tensor[] = [];
        for (let t = 0; t < 3; t++) {
          net.zeroGrad();
          const { losses } = taskLosses(net.logits(batch), batch);
          losses[t]!.backward();
          G.push(flatGrads(shared));
          heads.push(flatGrads(net.taskParameters(t)));
        }
        const Gm = noGrad(() => cat(G.map((g) => g.unsqueeze(0)), 0));
        const alpha = alignedMtlWeights(Gm);
        const want = noGrad(() => tensor(alpha, [1, 3]).matmul(Gm).squeeze(0));
        net.zeroGrad();
        m.backward(batch);
        assertClose(flatGrads(shared), want.toNumbers(), { atol: 1e-6, rtol: 1e-4 }, 'shared gradient');
        for (let t = 0; t < 3; t++) assertClose(flatGrads(net.taskParameters(t)), heads[t]!.toNumbers(), { atol: 1e-6, rtol: 1e-4 }, `head ${t}`);
      });
    } finally {
      batch.dispose();
      m.dispose();
    }
  });

  test('moco-mtl: its state is checkpointed; a resumed run continues exactly', () => {
    manualSeed(3);
    const a = createMocoMtl(tinyContext());
    const keys = [...tidy(() => a.module.stateDict()).keys()];
    for (const k of ['moco.y', 'moco.lambda', 'moco.step']) assert.ok(keys.includes(k), `${k} in the state dict`);
    trainSteps(a, 2);
    const b = createMocoMtl(tinyContext());
    const batch = taskBatch([3, 4, 2]);
    try {
      tidy(() => {
        b.module.loadStateDict(a.module.stateDict());
        const sa = (a.module as MultiTaskNet).getModule<MocoState>('moco');
        const sb = (b.module as MultiTaskNet).getModule<MocoState>('moco');
        assert.equal(sb.step, 2);
        for (const m of [a, b]) {
          m.module.zeroGrad();
          m.backward(batch);
        }
        assert.equal(sa.step, 3);
        assert.equal(sb.step, 3);
        assertClose(sb.lambda, sa.lambda.toNumbers(), { atol: 0 }, 'lambda');
        assertClose(sb.y, sa.y.toNumbers(), { atol: 0 }, 'y');
        const ga = flatGrads(a.module.parameters());
        assertClose(flatGrads(b.module.parameters()), ga.toNumbers(), { atol: 0 }, 'gradients');
        // And the shared gradient really is y^T lambda of that state.
        const d = noGrad(() => sa.lambda.unsqueeze(0).matmul(sa.y).squeeze(0));
        assertClose(flatGrads((a.module as MultiTaskNet).sharedParameters()), d.toNumbers(), { atol: 1e-7 }, 'y^T lambda');
      });
    } finally {
      batch.dispose();
      a.dispose();
      b.dispose();
    }
  });
});
