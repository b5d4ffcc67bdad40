// A decomposition model with random, non-trivial weights for deployment and serving tests:
// experts off zero, BatchNorm statistics and affine parameters away from their identity init.
import { manualSeed, noGrad } from '../../src/tensor/index.js';
import { BatchNorm2d } from '../../src/nn/index.js';
import { DecompositionModel } from '../../src/lorkd/index.js';
import type { Module } from '../../src/nn/module.js';
import { createModel, type ImageClassifier } from '../../src/models/index.js';
import { InferencePlan } from '../../src/infer/index.js';

/** A registry network (seeded) with random BatchNorms, in eval mode, and its inference plan. */
export function plannedNetwork(name: string, numClasses: number, seed: number): { model: ImageClassifier; plan: InferencePlan } {
  manualSeed(seed);
  const model = createModel(name, { numClasses });
  randomizeBatchNorms(model);
  model.eval();
  return { model, plan: InferencePlan.of(model) };
}

/** Every BatchNorm's statistics and affine parameters away from their identity init. */
export function randomizeBatchNorms(net: Module): void {
  noGrad(() => {
    for (const m of net.modules()) {
      if (!(m instanceof BatchNorm2d)) continue;
      m.getBuffer('running_mean').normal_(0, 0.1);
      m.getBuffer('running_var').uniform_(0.5, 1.5);
      m.getParameter('weight').uniform_(0.5, 1.5);
      m.getParameter('bias').uniform_(-0.2, 0.2);
    }
  });
}

export function randomizeDecomposition(dm: DecompositionModel, o: { headStd?: number } = {}): DecompositionModel {
  randomizeBatchNorms(dm);
  noGrad(() => {
    for (const [, c] of dm.expertConvs()) c.getModule('expertB').parameters().forEach((b) => b.normal_(0, 0.05));
    if (o.headStd !== undefined) for (let t = 0; t < dm.numTasks; t++) dm.head(t).weight.normal_(0, o.headStd);
  });
  return dm;
}

/** A ShuffleNetV2 x0.5 decomposition over three two-class tasks at rank 2, randomized, in eval mode. */
export function smallShuffleDecomposition(): DecompositionModel {
  const tasks = [0, 1, 2].map((t) => ({ name: `t${t}`, classNames: ['a', 'b'] }));
  const dm = randomizeDecomposition(new DecompositionModel({ model: 'shufflenet_v2_x0_5', tasks, rank: 2, strategy: 'fused' }));
  dm.eval();
  return dm;
}
