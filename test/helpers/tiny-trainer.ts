// A tiny conv + batchNorm + linear classifier trained with plain SGD, for memory tests.
// Run directly with a step count (`node tiny-trainer.js STEPS`), it trains synchronously and prints
// the RSS growth between step 200 and the last step as JSON. Without one (as when `node --test`
// picks up every file under test/), it does nothing.
import { fileURLToPath } from 'node:url';
import {
  Tensor, zeros, ones, randn, randint, tidy, noGrad, manualSeed, conv2d, batchNorm, relu, maxPool2d, adaptiveAvgPool2d, linear,
  crossEntropy,
} from '../../src/tensor/index.js';

export interface TinyTrainer {
  /** One SGD step in its own tidy scope; returns the loss. */
  step: () => number;
  params: Tensor[];
  /** Frees the parameters, buffers and data. */
  dispose: () => void;
  /** Number of tensors dispose() frees. */
  count: number;
}

/** Parameters, running stats and a fixed batch (seeded), and the step function. */
export function makeTrainer(): TinyTrainer {
  manualSeed(0);
  const param = (shape: number[], scale: number) => tidy(() => noGrad(() => randn(shape).mul(scale))).requiresGrad_();
  const [w1, b1, w2, b2] = [param([8, 1, 3, 3], 0.3), param([8], 0.1), param([4, 8], 0.3), param([4], 0.1)] as Tensor[] as [Tensor, Tensor, Tensor, Tensor];
  const bnWeight = ones([8]).requiresGrad_();
  const bnBias = zeros([8]).requiresGrad_();
  const params = [w1, b1, w2, b2, bnWeight, bnBias];
  const runningMean = zeros([8]);
  const runningVar = ones([8]);
  const x0 = randn([16, 1, 12, 12]);
  const y = randint(0, 4, [16]);
  const step = (): number =>
    tidy(() => {
      const x = x0.add(randn([16, 1, 12, 12]).mul(0.05)); // fresh noise every step
      let h = conv2d(x, w1, b1, { padding: 1 });
      h = relu(batchNorm(h, { weight: bnWeight, bias: bnBias, runningMean, runningVar, training: true }));
      h = adaptiveAvgPool2d(maxPool2d(h, 2), 1).flatten(1);
      const loss = crossEntropy(linear(h, w2, b2), y);
      loss.backward();
      noGrad(() => {
        for (const p of params) {
          p.add_(p.grad!, -0.1);
          p.grad = null;
        }
      });
      return loss.item();
    });
  const owned = [...params, runningMean, runningVar, x0, y];
  return { step, params, dispose: () => owned.forEach((t) => t.dispose()), count: owned.length };
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] !== undefined) {
  const steps = Number(process.argv[2]);
  const trainer = makeTrainer();
  let rss200 = 0;
  for (let i = 1; i <= steps; i++) {
    trainer.step();
    if (i === 200) rss200 = process.memoryUsage().rss;
  }
  trainer.dispose();
  console.log(JSON.stringify({ growthMiB: (process.memoryUsage().rss - rss200) / 2 ** 20 }));
}
