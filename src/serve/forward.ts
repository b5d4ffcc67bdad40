// The two forward paths of a micro-batch, on preprocessed single-image inputs (1, C, S, S):
// EKS (one pass of the decomposition model over rows of mixed tasks, each row through its own
// expert and head) and plain (one model, one department). Both return softmax probabilities per
// input, in input order, and free everything they create. The inputs are made on the host; the
// batch goes to the model's device (pinned, non-blocking on CUDA) and runs under the service's
// precision (autocast). Both run the network's inference path (src/infer), built once per model.
// lorkd serve runs them in its forward worker (forward-host.ts), on twins of the served models.
import type { DecompositionModel } from '../lorkd/decomposition.js';
import { Routing } from '../lorkd/routing.js';
import type { ImageClassifier } from '../models/classifier.js';
import type { Module } from '../nn/module.js';
import { type Tensor, cat, softmax, tidy, autocast, hostToDevice, type Precision } from '../tensor/index.js';
import { InferencePlan } from '../infer/index.js';
import { forgetTwins } from './forward-host.js';

// A served model's weights never change: its plan is made on its first batch and lives as long
// as it does (the folded weights are freed with it, by the garbage collector, or by forgetPlan).
const plans = new WeakMap<Module, InferencePlan>();
function planOf(model: Module): InferencePlan {
  let p = plans.get(model);
  if (!p) {
    p = InferencePlan.of(model);
    plans.set(model, p);
  }
  return p;
}
/** Frees the inference path of a model that is being disposed or changed (and its twin in every forward worker). */
export function forgetPlan(model: Module): void {
  plans.get(model)?.dispose();
  plans.delete(model);
  forgetTwins(model);
}

/** The rows of a (n, c) probability tensor as separate arrays. */
function rowsOf(p: Tensor): Float32Array[] {
  const c = p.size(1);
  const a = p.toArray() as Float32Array;
  return Array.from({ length: p.size(0) }, (_, i) => a.slice(i * c, (i + 1) * c));
}

/** One batch tensor from single-image inputs on `device`, channels_last (the fast path of the expert convs). */
const batchOf = (inputs: Tensor[], device: string): Tensor => hostToDevice(inputs.length === 1 ? inputs[0]! : cat(inputs, 0), device).contiguous('channels_last');

/**
 * EKS: `tasks[i]` is the task index of `inputs[i]`, and the inputs must be sorted by task (the
 * batcher sorts them), so the batch goes through forwardRouted as it is.
 */
export function eksProbs(dm: DecompositionModel, inputs: Tensor[], tasks: readonly number[], precision: Precision = 'fp32'): Float32Array[] {
  const routing = Routing.fromSortedTaskIds(tasks, dm.numTasks);
  const device = dm.device;
  try {
    return planOf(dm).run(() =>
      tidy(() => {
        // Every EKS strategy computes the same function; the inference path runs the fused one.
        const { logits } = autocast(device, precision, () => dm.forwardRouted(batchOf(inputs, device), routing, 'fused'));
        return logits.flatMap((l) => (l ? rowsOf(softmax(l.float(), 1)) : []));
      }),
    );
  } finally {
    routing.dispose();
  }
}

/** One plain model over its department's inputs. */
export function plainProbs(model: ImageClassifier, inputs: Tensor[], precision: Precision = 'fp32'): Float32Array[] {
  const device = model.device;
  return planOf(model).run(() => tidy(() => rowsOf(softmax(autocast(device, precision, () => model.forward(batchOf(inputs, device))).float(), 1))));
}
