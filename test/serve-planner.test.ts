// The planner: how a micro-batch is split into passes in each mode, and auto's choice from the
// pass times fed back to it (explores an unmeasured way first, then takes the cheaper estimate,
// re-trying the other every EXPLORE_EVERY batches of the same shape).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Planner, EXPLORE_EVERY, passes, costKey, type Job, type Pass } from '../src/serve/planner.js';
import type { DepartmentVersion, SharedDecomposition } from '../src/serve/departments.js';
import type { ImageClassifier } from '../src/models/classifier.js';
import type { Tensor } from '../src/tensor/index.js';

const shared = { id: 1 } as unknown as SharedDecomposition;
const plains = [0, 1, 2].map((i) => ({ name: `plain${i}` }) as unknown as ImageClassifier);
const fileModel = { name: 'from-file' } as unknown as ImageClassifier;
const version = (task: number, o: { eks?: boolean; plain?: boolean } = { eks: true, plain: true }): DepartmentVersion =>
  ({
    task: `t${task}`,
    arch: 'net@32',
    eks: o.eks ? { shared, index: task } : null,
    plain: o.plain ? (task < 3 ? plains[task] : fileModel) : null,
  }) as unknown as DepartmentVersion;
const job = (v: DepartmentVersion, i: number): Job => ({ version: v, input: { i } as unknown as Tensor, arrived: i, resolve() {}, reject() {} });
const both = [0, 1, 2].map((t) => version(t));
/** Jobs of tasks 2, 0, 1, 0, 2, 1 (arrival order). */
const mixed = () => [2, 0, 1, 0, 2, 1].map((t, i) => job(both[t]!, i));
const rowsOf = (p: Pass) => p.jobs.map((j) => (j.input as unknown as { i: number }).i);

describe('serve planner', () => {
  test('eks: one pass per shared model, rows sorted by task (stable); fused: one pass per department', () => {
    const e = new Planner('eks').plan(mixed());
    assert.equal(e.length, 1);
    assert.equal(e[0]!.path, 'eks');
    assert.deepEqual(rowsOf(e[0]!), [1, 3, 2, 5, 0, 4]);
    const f = new Planner('fused').plan(mixed());
    assert.deepEqual(f.map((p) => p.path), ['plain', 'plain', 'plain']);
    assert.deepEqual(f.map(rowsOf), [[0, 4], [1, 3], [2, 5]]);
  });

  test('a department with only its own model runs on it in every mode; one without a plain model runs through EKS', () => {
    const fromFile = version(3, { plain: true });
    const eksOnly = version(1, { eks: true });
    const jobs = [job(fromFile, 0), job(both[0]!, 1), job(eksOnly, 2)];
    for (const mode of ['eks', 'fused', 'auto'] as const) {
      const ps = new Planner(mode).plan(jobs);
      assert.ok(ps.some((p) => p.path === 'plain' && p.model === fileModel && rowsOf(p).join() === '0'), mode);
      assert.ok(ps.some((p) => p.path === 'eks' && rowsOf(p).includes(2)), mode);
    }
  });

  test('auto: measures both ways, then takes the cheaper and re-tries the other every EXPLORE_EVERY batches', () => {
    const pl = new Planner('auto');
    const run = (eksMsPerRow: number, plainMsPerRow: number) => {
      const ps = pl.plan(mixed());
      for (const p of ps) pl.record(p, p.jobs.length * (p.path === 'eks' ? eksMsPerRow : plainMsPerRow));
      return ps[0]!.path;
    };
    assert.equal(run(1, 3), 'eks'); // nothing measured: EKS first
    assert.equal(run(1, 3), 'plain'); // then the fused way
    const picks = Array.from({ length: 3 * EXPLORE_EVERY }, () => run(1, 3));
    const explored = picks.filter((p) => p === 'plain').length;
    assert.ok(explored >= 2 && explored <= 4, `fused tried ${explored} times in ${picks.length}`);
    assert.ok(picks.filter((p) => p === 'eks').length > picks.length - 5);
    // The load changes: EKS gets slower than three plain passes; the estimate follows within a few batches.
    const later = Array.from({ length: 3 * EXPLORE_EVERY }, () => run(10, 1));
    assert.equal(later.slice(-EXPLORE_EVERY).filter((p) => p === 'plain').length >= EXPLORE_EVERY - 2, true, later.join(','));
    assert.equal(pl.estimate(passes(mixed(), () => false)), 6 * 1);
  });

  test('auto: a batch of one department runs on its fused expert', () => {
    const pl = new Planner('auto');
    const ps = pl.plan([0, 1, 2].map((i) => job(both[1]!, i)));
    assert.deepEqual(ps.map((p) => [p.path, rowsOf(p).join()]), [['plain', '0,1,2']]);
    assert.equal(pl.choices.fused, 1);
  });

  test('cost keys: EKS by departments present and batch-size bucket; plain by architecture and bucket', () => {
    const e = passes(mixed(), () => true)[0]!;
    assert.equal(costKey(e), 'eks:1:k3:b8');
    const f = passes(mixed(), () => false)[0]!;
    assert.equal(costKey(f), 'plain:net@32:b2');
  });
});
