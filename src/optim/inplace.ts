// In-place ops the binding has but Tensor does not expose yet (used by the optimizers only).
import { N } from '../tensor/ops-native.js';
import type { Tensor } from '../tensor/tensor.js';

/** t = sqrt(t), in place; returns t. */
export function sqrt_(t: Tensor): Tensor {
  N.sqrt_(t.handle);
  return t;
}
