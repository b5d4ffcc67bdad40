// The low-rank factors of one expert convolution, one pair of parameters per task, keyed by task
// name (as PEFT keys its adapters by name): `<conv>.expertA.<task>` (r_t*k, Cin*k) and
// `<conv>.expertB.<task>` (Cout*k, r_t*k). A task can be added, frozen, trained or removed on its
// own. The EKS kernels take the factors of all tasks as one (T, ...) tensor: `packFactors` builds
// it inside the forward (stack), so autograd flows back to each task's own parameters.
import { Module } from '../nn/module.js';
import { type Tensor, cat, stack, zeros } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';

/** A named set of parameters (PyTorch's ParameterDict): one per task. */
export class TaskParameters extends Module {
  override forward(): Tensor {
    throw new UserError('TaskParameters holds parameters; it has no forward');
  }
}

/** One task's factors and scale: delta_t = reshape(B A, W0's shape) * scale. */
export interface TaskFactors {
  a: Tensor;
  b: Tensor;
  rank: number;
  scale: number;
}

/** The (T, ...) factors the EKS strategies take, and their common scale. */
export interface PackedFactors {
  expertA: Tensor;
  expertB: Tensor;
  scale: number;
}

/** Every task's factors at one common rank and scale (what packing and per-sample gathering take). */
export interface CommonFactors {
  a: Tensor[];
  b: Tensor[];
  scale: number;
}

/**
 * The tasks' factors at one rank and scale. When every task has the same rank and scale, A and B
 * are the parameters as they are. Otherwise A is padded with zero rows and B, scaled by its task's
 * scale, with zero columns up to the largest rank, and the common scale is 1: the padded terms of
 * B A are exact zeros.
 */
export function commonFactors(tasks: readonly TaskFactors[]): CommonFactors {
  if (tasks.length === 0) throw new UserError('an expert convolution with no tasks has nothing to run');
  const first = tasks[0]!;
  if (tasks.every((t) => t.rank === first.rank && t.scale === first.scale)) return { a: tasks.map((t) => t.a), b: tasks.map((t) => t.b), scale: first.scale };
  const rk = Math.max(...tasks.map((t) => t.a.size(0)));
  const pad = (x: Tensor, dim: 0 | 1): Tensor => {
    const missing = rk - x.size(dim);
    if (missing === 0) return x;
    const shape = dim === 0 ? [missing, x.size(1)] : [x.size(0), missing];
    return cat([x, zeros(shape, { dtype: x.dtype, device: x.device })], dim);
  };
  return { a: tasks.map((t) => pad(t.a, 0)), b: tasks.map((t) => pad(t.scale === 1 ? t.b : t.b.mul(t.scale), 1)), scale: 1 };
}

/** The tasks' factors stacked at one common rank and scale (see commonFactors). */
export function packFactors(tasks: readonly TaskFactors[]): PackedFactors {
  const c = commonFactors(tasks);
  if (c.a.length === 1) return { expertA: c.a[0]!.unsqueeze(0), expertB: c.b[0]!.unsqueeze(0), scale: c.scale };
  return { expertA: stack(c.a), expertB: stack(c.b), scale: c.scale };
}
