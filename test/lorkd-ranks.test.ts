// Per-task ranks: `--rank 8` or `--rank a=4,b=16` (one-line refusals), `--ranks` lists of either,
// and the counts of `lorkd params` per task against the hand formula r k^2 (Cin + Cout) per conv.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRankSpec, parseRankList, DecompositionModel } from '../src/lorkd/index.js';
import { complexity } from '../src/eval/complexity.js';
import { UserError } from '../src/tensor/errors.js';

test('--rank and --ranks parse one rank or a rank per task; bad input is a one-line UserError', () => {
  assert.equal(parseRankSpec('8'), 8);
  assert.deepEqual(parseRankSpec('breastmnist=4, pneumoniamnist=8,retinamnist=16'), { breastmnist: 4, pneumoniamnist: 8, retinamnist: 16 });
  assert.deepEqual(parseRankList('4,8,16'), [4, 8, 16]);
  assert.deepEqual(parseRankList('8;a=4,b=16'), [8, { a: 4, b: 16 }]);
  for (const bad of ['0', 'x', 'a=', '=4', 'a=4,a=8', 'a=1.5', '100000']) {
    assert.throws(() => parseRankSpec(bad), (e: Error) => e instanceof UserError && e.message.startsWith('--rank') && !e.message.includes('\n'), bad);
  }
  const tasks = [{ name: 'a', classNames: ['x', 'y'] }, { name: 'b', classNames: ['x', 'y'] }];
  assert.throws(() => new DecompositionModel({ model: 'shufflenet_v2_x0_5', tasks, rank: { a: 2 } }), /no rank for task "b"/);
  assert.throws(() => new DecompositionModel({ model: 'shufflenet_v2_x0_5', tasks, rank: { a: 2, b: 2, c: 1 } }), /unknown task c/);
});

test('params per task: each task\'s expert count is its rank times the rank-1 count, and the model has exactly that many', () => {
  const names = ['a', 'b', 'c'];
  const r = complexity({ model: 'shufflenet_v2_x0_5', tasks: 3, rank: [1, 4, 2], names, input: 32, classes: [2, 2, 2] });
  const one = complexity({ model: 'shufflenet_v2_x0_5', tasks: 1, rank: [1], input: 32, classes: [2] });
  assert.deepEqual(complexity({ model: 'shufflenet_v2_x0_5', tasks: 3, rank: 4, input: 32 }).per_task, [], 'one rank for every task: nothing per task');
  const perRank1 = one.per_task[0]!.params_experts;
  assert.deepEqual(r.per_task.map((t) => [t.name, t.rank, t.params_experts]), [['a', 1, perRank1], ['b', 4, 4 * perRank1], ['c', 2, 2 * perRank1]]);
  const dm = new DecompositionModel({ model: 'shufflenet_v2_x0_5', tasks: names.map((name) => ({ name, classNames: ['x', 'y'] })), rank: { a: 1, b: 4, c: 2 } });
  const experts = dm.namedParameters().filter(([k]) => /\.expert[AB]\./.test(k)).reduce((s, [, p]) => s + p.numel, 0);
  assert.equal(experts, 7 * perRank1);
  assert.equal(r.params_training_with_heads, dm.numParameters());
  dm.dispose();
});
