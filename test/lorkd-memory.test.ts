// Memory: training a decomposition model with the fused EKS strategy (forwardTasks, per-task
// cross-entropy, backward, SGD with momentum and weight decay) keeps the live native tensors and
// their bytes flat over 50 steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn, tensor, crossEntropy, tidy, memory, manualSeed, type Tensor } from '../src/tensor/index.js';
import { SGD } from '../src/optim/index.js';
import { DecompositionModel, type TaskSpec } from '../src/lorkd/index.js';
import { lcg } from './helpers/random.js';

const TASKS: TaskSpec[] = [2, 3, 4].map((n, i) => ({ name: `task${i}`, classNames: Array.from({ length: n }, (_, c) => `c${c}`) }));
const BATCH = 6;
const SIZE = 16;

test('50 fused training steps keep memory().liveTensors and externalBytes flat', () => {
  manualSeed(0);
  const dm = new DecompositionModel({ model: 'shufflenet_v2_x0_5', tasks: TASKS, rank: 2, strategy: 'fused' });
  const opt = new SGD(dm.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 });
  const rnd = lcg(3);
  const step = (): number =>
    tidy(() => {
      // A batch of mixed tasks (some batches miss a task), random labels within each task's classes.
      const ids = Array.from({ length: BATCH }, () => Math.floor(rnd() * TASKS.length));
      const x = randn([BATCH, 3, SIZE, SIZE]);
      opt.zeroGrad();
      const out = dm.forwardTasks(x, ids);
      let loss: Tensor | null = null;
      out.logits.forEach((logits, t) => {
        if (!logits) return;
        const n = logits.size(0);
        const y = tensor(Array.from({ length: n }, () => Math.floor(rnd() * TASKS[t]!.classNames.length)), [n], { dtype: 'int64' });
        const l = crossEntropy(logits, y, { reduction: 'sum' });
        loss = loss ? loss.add(l) : l;
      });
      const mean = loss!.div(BATCH);
      mean.backward();
      opt.step();
      return mean.item();
    });
  // Warm-up: the first steps create the gradients and the momentum buffers.
  for (let i = 0; i < 3; i++) step();
  const before = memory();
  const losses: number[] = [];
  for (let i = 0; i < 50; i++) losses.push(step());
  const afterSteps = memory();
  assert.ok(losses.every(Number.isFinite), 'finite losses');
  assert.equal(afterSteps.liveTensors, before.liveTensors, 'live tensors grew');
  assert.equal(afterSteps.externalBytes, before.externalBytes, 'tensor bytes grew');
  dm.dispose();
});
