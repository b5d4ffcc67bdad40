// Fine-tuning one network on one downstream task (paper 4.3, Table 2; `lorkd transfer`): CE on the
// task's labels through the Method seam, so transfer trains on the one trainer like every method.
// Not a Table 1 method: it is not in the registry.
import { crossEntropy } from '../../tensor/index.js';
import type { Module } from '../../nn/module.js';
import type { Tensor } from '../../tensor/index.js';
import { PLAIN_STEP, type Method } from './method.js';

export function finetune(model: Module & { forward(x: Tensor): Tensor }, channelsLast: boolean): Pick<Method, 'module' | 'backward'> {
  return {
    module: model,
    backward(batch, step = PLAIN_STEP) {
      const loss = step.forward(() => crossEntropy(model.forward(channelsLast ? batch.images.contiguous('channels_last') : batch.images), batch.local));
      step.backward(loss);
      return loss;
    },
  };
}
