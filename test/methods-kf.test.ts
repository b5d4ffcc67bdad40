// KF, Knowledge Factor (METHOD.md, "Baselines, concretely"): InfoMax and InfoMin against values
// computed by hand, the paper's parameter counts (Table 4), a tiny training run, and the deployed
// CKN + TSN_t pair (same logits as in training, saved and loaded as a kf-expert file).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Tensor, tensor, tidy, noGrad, manualSeed, randn, keep, UserError } from '../src/tensor/index.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { loadExpertFile } from '../src/export/expert-file.js';
import { tensorRows } from '../src/experiments/methods/kd.js';
import { createKf, infoMax, infoMin, kfParams, KF_TSN_MODEL } from '../src/experiments/methods/kf.js';
import { loadKfExpert } from '../src/experiments/methods/kf-expert.js';
import type { MethodContext } from '../src/experiments/methods/method.js';
import { assertClose } from './helpers/assert.js';
import { taskBatch, tinyContext, sgdSteps, assertDecreasing } from './helpers/methods-batch.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const t64 = (rows: number[][]): Tensor => tensor(rows.flat(), [rows.length, rows[0]!.length], { dtype: 'float64' });

test('InfoMax: hand-computed values', () => {
  tidy(() => {
    // Orthonormal pairs: s = I, mean diag 1, mean exp(off-diagonal) = exp(0) = 1 -> -(1 - log 1) = -1.
    assertClose(infoMax(t64([[2, 0], [0, 3]]), t64([[5, 0], [0, 0.5]])), [-1], { atol: 1e-15 }, 'orthonormal');
    // Rows (1,0),(0,1),(1,1) against (1,0),(1,1),(0,2); after normalisation by hand:
    const r = Math.SQRT1_2;
    const a = [[1, 0], [0, 1], [r, r]];
    const b = [[1, 0], [r, r], [0, 1]];
    const s = a.map((x) => b.map((y) => x[0]! * y[0]! + x[1]! * y[1]!)); // [[1, r, 0], [0, r, 1], [r, 1, r]]
    assertClose(s.flat(), [1, r, 0, 0, r, 1, r, 1, r], { atol: 1e-15 }, 's by hand');
    const diag = (1 + r + r) / 3;
    const off = (Math.exp(r) + Math.exp(0) + Math.exp(0) + Math.exp(1) + Math.exp(r) + Math.exp(1)) / 6;
    assertClose(infoMax(t64([[1, 0], [0, 1], [1, 1]]), t64([[1, 0], [1, 1], [0, 2]])), [-(diag - Math.log(off))], { atol: 1e-14 }, 'three rows');
    assert.throws(() => infoMax(t64([[1, 0]]), t64([[1, 0]])), UserError);
  });
});

test('InfoMin: hand-computed values', () => {
  tidy(() => {
    // Columns: mean 2, unbiased var (4 + 0 + 4) / 2 = 4; mean 2, var (1 + 1 + 4) / 2 = 3.
    const want = -0.5 * ((1 + Math.log(4) - 4 - 4) + (1 + Math.log(3) - 4 - 3)) / 2;
    assertClose(infoMin(t64([[0, 1], [2, 1], [4, 4]])), [want], { atol: 1e-8 }, 'two dims');
    // Batch mean 0 and variance 1 is N(0, 1) itself: KL 0.
    assertClose(infoMin(t64([[Math.SQRT1_2], [-Math.SQRT1_2]])), [0], { atol: 1e-8 }, 'standard normal');
    assert.throws(() => infoMin(t64([[1, 2]])), UserError);
  });
});

test('parameter counts: Table 4 at 11 tasks (5.01 M trained, 1.60 M deployed)', () => {
  const c = kfParams(11);
  assert.equal(c.params_training, 1253604 + 11 * 341792);
  assert.equal(c.params_deployment, 1253604 + 341792);
  assert.equal((c.params_training / 1e6).toFixed(2), '5.01');
  assert.equal((c.params_deployment / 1e6).toFixed(2), '1.60');
  const h = kfParams(2, [2, 5]);
  assert.equal(h.params_training_with_heads, c.params_deployment + 341792 + (2049 + 1025) * 7);
  assert.deepEqual(h.params_deployment_with_head, [1595396 + 2049 * 2, 1595396 + 2049 * 5]);
  assert.throws(() => kfParams(0), UserError);
  assert.equal(KF_TSN_MODEL, 'shufflenet_v2_x0_5');
});

/** A tiny KF: CKN and TSNs both ShuffleNetV2 x0.5, a random teacher cache of 32 rows. */
function tinyKf(): { m: ReturnType<typeof createKf>; teacherLogits: Tensor; dispose: () => void } {
  const features = keep(randn([32, 8]));
  const logits = keep(randn([32, 7]));
  const ctx: MethodContext = tinyContext({ kd: { mode: 'feature', alpha: 10, beta: 1, features: tensorRows(features), logits: tensorRows(logits) } });
  const m = createKf(ctx);
  return {
    m,
    teacherLogits: logits,
    dispose: () => {
      m.dispose();
      features.dispose();
      logits.dispose();
    },
  };
}

test('KF needs a teacher; counts CKN + T TSNs', () => {
  assert.throws(() => createKf(tinyContext()), /kf distils from the foundation/);
  manualSeed(0);
  const { m, dispose } = tinyKf();
  try {
    assert.deepEqual(m.params(), { params_training: 341792 * 4, params_deployment: 341792 * 2 });
    assert.equal(m.describe().tsn_model, 'shufflenet_v2_x0_5');
  } finally {
    dispose();
  }
});

test('KF trains (finite, decreasing loss) and deploys CKN + TSN_t with the training-time logits', () => {
  manualSeed(1);
  const { m, dispose } = tinyKf();
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-kf-'));
  dirs.push(dir);
  const batch = taskBatch([3, 4, 2]);
  try {
    // A pass in training mode (BatchNorm on batch statistics, the projector's BN1d included).
    const first = tidy(() => m.backward(batch).item());
    assert.ok(Number.isFinite(first), `loss ${first}`);
    m.module.zeroGrad();
    // Then SGD with BN on running statistics (see methods-moco-aligned.test.ts for why).
    m.module.eval();
    const losses = sgdSteps(m, batch, 5);
    m.module.train();
    assertDecreasing(losses);

    tidy(() => {
      const logits = m.logits(batch);
      assert.equal(m.module.training, true, 'logits() restores the training mode');
      const d = m.deploy(1);
      try {
        const rows = batch.images.narrow(0, batch.routing.offsets[1]!, batch.routing.counts[1]!);
        assertClose(d.forward(rows), logits[1]!.toNumbers(), { atol: 1e-5 }, 'deployed task 1');
        const file = path.join(dir, 'retina.safetensors');
        d.save(file, { input_size: '16', mean: '[0.5,0.5,0.5]', std: '[0.5,0.5,0.5]', source_method: 'kf' });
        const { tensors, metadata } = loadSafetensors(file);
        assert.equal(metadata.lorkd_format, 'kf-expert');
        assert.equal(metadata.source_method, 'kf');
        const keys = [...tensors.keys()];
        assert.ok(keys.every((k) => /^(ckn|tsn|fc)\./.test(k)), `keys ${keys.filter((k) => !/^(ckn|tsn|fc)\./.test(k)).slice(0, 3)}`);
        assert.ok(keys.includes('ckn.conv1.0.weight') && keys.includes('tsn.conv5.1.running_var') && keys.includes('fc.weight'));
        const e = loadKfExpert(file);
        try {
          assert.equal(e.meta.task, 'retina');
          assert.deepEqual(e.meta.classNames, ['0', '1', '2']);
          assert.equal(e.meta.inputSize, 16);
          assertClose(e.forward(rows), logits[1]!.toNumbers(), { atol: 1e-5 }, 'loaded KF expert');
        } finally {
          e.model.dispose();
        }
        assert.throws(() => loadExpertFile(file), /not a lorkd expert file \(lorkd_format is "kf-expert"/);
        assert.throws(() => loadKfExpert(path.join(dir, 'missing.safetensors')), /KF expert file not found/);
        assert.throws(() => d.save(path.join(dir, 'bad.safetensors'), { input_size: '16', mean: '[0.5]', std: '[0.5,0.5,0.5]' }), /mean has 1 values for 3 channels/);
      } finally {
        d.dispose();
      }
      noGrad(() => assert.throws(() => m.deploy(3), /out of range/));
    });
  } finally {
    batch.dispose();
    dispose();
  }
});

test('KF loss: label-smoothed CE and logit KD by direct computation; the total weights the five terms', () => {
  manualSeed(2);
  const { m, teacherLogits, dispose } = tinyKf();
  const batch = taskBatch([3, 4, 2]);
  try {
    m.module.eval(); // deterministic: the same terms in lossTerms and backward
    tidy(() => {
      const t = noGrad(() => m.lossTerms(batch));
      const teacher = teacherLogits.toNumbers();
      const labels = Array.from(batch.info.local);
      const logSoftmax = (z: number[]): number[] => {
        const mx = Math.max(...z);
        const lse = mx + Math.log(z.reduce((s, v) => s + Math.exp(v - mx), 0));
        return z.map((v) => v - lse);
      };
      let ce = 0;
      let kd = 0;
      batch.routing.counts.forEach((c, k) => {
        const task = tinyContext().tasks[k]!;
        const n = task.classNames.length;
        const z = t.logits[k]!.toNumbers();
        for (let i = 0; i < c; i++) {
          const row = batch.routing.offsets[k]! + i;
          const zi = z.slice(i * n, (i + 1) * n);
          const lp = logSoftmax(zi);
          ce += 0.9 * -lp[labels[row]!]! + (0.1 * lp.reduce((s, v) => s - v, 0)) / n;
          const lq = logSoftmax(zi.map((v) => v / 10));
          const lt = logSoftmax(teacher.slice(row * 7 + task.classOffset, row * 7 + task.classOffset + n).map((v) => v / 10));
          kd += lt.reduce((s, v, j) => s + Math.exp(v) * (v - lq[j]!), 0);
        }
      });
      const B = batch.size;
      assertClose(t.ce, [ce / B], { atol: 1e-6, rtol: 1e-5 }, 'label-smoothed CE');
      assertClose(t.kd, [(kd / B) * 0.1 * 100], { atol: 1e-6, rtol: 1e-4 }, 'logit KD x 0.1 T^2');
      const want = t.ce.item() + t.ceTsn.item() + t.infoMax!.item() + 1e-3 * t.infoMin!.item() + t.kd.item();
      assertClose([m.backward(batch).item()], [want], { atol: 1e-5, rtol: 1e-5 }, 'total loss');
    });
  } finally {
    m.module.train();
    batch.dispose();
    dispose();
  }
});
