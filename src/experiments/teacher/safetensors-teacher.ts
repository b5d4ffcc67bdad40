// A lorkd foundation file (safetensors) as the teacher: pooled features and unified logits, its
// preprocessing and tasks from its metadata; runs on the run's device.
import { type Tensor, noGrad, tidy } from '../../tensor/index.js';
import type { Triple } from '../../data/index.js';
import { loadFoundation } from '../foundation-file.js';
import type { Teacher } from './teacher.js';

export function openSafetensorsTeacher(file: string): Teacher {
  const { model, meta } = loadFoundation(file);
  const classes = meta.tasks.reduce((a, t) => a + t.classNames.length, 0);
  let device = 'cpu';
  let channelsLast = false;
  return {
    file,
    arch: meta.model,
    outputs: ['features', 'logits'],
    preprocessing: { input: meta.input, mean: meta.mean as unknown as Triple, std: meta.std as unknown as Triple },
    tasks: meta.tasks,
    numFeatures: model.numFeatures,
    numLogits: classes,
    has: `pooled features (${model.numFeatures}) and logits (${classes})`,
    cacheTag: '',
    batchSize: 256,
    get device() {
      return device;
    },
    place(d, cl) {
      model.to(d);
      if (cl) model.toChannelsLast();
      model.eval();
      device = d;
      channelsLast = cl;
    },
    async forward(x: Tensor) {
      const [features, logits] = noGrad(() =>
        tidy(() => {
          const f = model.forwardFeatures(channelsLast ? x.contiguous('channels_last') : x);
          return [f, model.forwardHead(f)] as const;
        }),
      );
      return { features, logits };
    },
    async dispose() {
      model.dispose();
    },
  };
}
