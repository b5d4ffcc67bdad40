// The foundation (docs/ARCHITECTURE.md "Methods"; paper 4.1): one network over the union of the tasks with ONE unified
// head over all classes, trained with CE on the global labels. Its logits are unified (every
// class of every task), so it is evaluated the paper's way (argmax over all classes) and also
// restricted to the task's classes. Deployed for task t: the network with the rows of the unified
// head that belong to task t (restricted prediction), a plain torchvision-layout classifier.
import { createModel } from '../../models/registry.js';
import { crossEntropy, tidy, noGrad, type Tensor } from '../../tensor/index.js';
import { PLAIN_STEP, type Method, type MethodContext, type TaskBatch } from './method.js';
import type { MethodSpec } from './spec.js';
import { estimateFoundation, suiteBytes } from '../resources.js';
import { classifierDeployment } from './multi-task-net.js';
import { evalNoGrad, backboneParams } from './common.js';
import type { ImageClassifier } from '../../models/classifier.js';

export interface FoundationMethod extends Method {
  readonly model: ImageClassifier;
}

export function createFoundation(ctx: MethodContext): FoundationMethod {
  const total = ctx.tasks.reduce((s, t) => s + t.classNames.length, 0);
  const model = createModel(ctx.model, { numClasses: total, inChannels: ctx.inChannels });
  if (ctx.channelsLast) model.toChannelsLast();
  const perTask = (b: TaskBatch, logits: Tensor) => b.routing.counts.map((c, t) => (c === 0 ? null : b.routing.slice(logits, t)));
  return {
    name: 'foundation',
    model,
    module: model,
    unifiedHead: true,
    backward(batch, step = PLAIN_STEP) {
      const loss = step.forward(() => crossEntropy(model.forward(batch.images), batch.global));
      step.backward(loss);
      return loss;
    },
    logits: (batch) => evalNoGrad(model, () => perTask(batch, model.forward(batch.images))),
    params: () => {
      const n = backboneParams(ctx.model, ctx.inChannels);
      return { params_training: n, params_deployment: n };
    },
    deploy(t) {
      const task = ctx.tasks[t]!;
      const plain = createModel(ctx.model, { numClasses: task.classNames.length, inChannels: ctx.inChannels });
      tidy(() => {
        const sd = new Map(model.stateDict());
        for (const k of ['fc.weight', 'fc.bias']) sd.set(k, sd.get(k)!.narrow(0, task.classOffset, task.classNames.length));
        noGrad(() => plain.loadStateDict(sd, { strict: true }));
      });
      return classifierDeployment(plain.eval(), ctx.model, task, ctx.inChannels);
    },
    describe: () => ({ method: 'foundation', model: ctx.model, classes: total }),
    dispose: () => model.dispose(),
  };
}

export const FOUNDATION: MethodSpec = {
  name: 'foundation', label: 'Foundation', arch: 'foundation', teacher: () => [], teacherRequired: false,
  flops: 'other', backward: 'single', ranked: false, options: [], create: createFoundation,
  memory: (o) => estimateFoundation({ arch: o.model, classes: o.suite.totalClasses, batch: o.batch, input: o.input, dataBytes: suiteBytes(o.suite) }),
};
