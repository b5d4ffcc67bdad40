// The two forward paths of a micro-batch, on preprocessed single-image inputs (1, C, S, S):
// EKS (one pass of the decomposition model over rows of mixed tasks, each row through its own
// expert and head) and plain (one model, one department). Both return softmax probabilities per
// input, in input order, and free everything they create.
import type { DecompositionModel } from '../lorkd/decomposition.js';
import { Routing } from '../lorkd/routing.js';
import type { ImageClassifier } from '../models/classifier.js';
import { type Tensor, cat, noGrad, softmax, tidy } from '../tensor/index.js';

/** The rows of a (n, c) probability tensor as separate arrays. */
function rowsOf(p: Tensor): Float32Array[] {
  const c = p.size(1);
  const a = p.toArray() as Float32Array;
  return Array.from({ length: p.size(0) }, (_, i) => a.slice(i * c, (i + 1) * c));
}

/** One batch tensor from single-image inputs, channels_last (the fast path of the expert convs). */
const batchOf = (inputs: Tensor[]): Tensor => (inputs.length === 1 ? inputs[0]! : cat(inputs, 0)).contiguous('channels_last');

/**
 * EKS: `tasks[i]` is the task index of `inputs[i]`, and the inputs must be sorted by task (the
 * batcher sorts them), so the batch goes through forwardRouted as it is.
 */
export function eksProbs(dm: DecompositionModel, inputs: Tensor[], tasks: readonly number[]): Float32Array[] {
  const routing = Routing.fromSortedTaskIds(tasks, dm.numTasks);
  try {
    return noGrad(() =>
      tidy(() => {
        const { logits } = dm.forwardRouted(batchOf(inputs), routing);
        return logits.flatMap((l) => (l ? rowsOf(softmax(l, 1)) : []));
      }),
    );
  } finally {
    routing.dispose();
  }
}

/** One plain model over its department's inputs. */
export function plainProbs(model: ImageClassifier, inputs: Tensor[]): Float32Array[] {
  return noGrad(() => tidy(() => rowsOf(softmax(model.forward(batchOf(inputs)), 1))));
}
