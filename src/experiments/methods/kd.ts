// The transfer loss shared by every KD method (LoRKD, STL-KD, MTL-KD; paper 3.3; docs/ARCHITECTURE.md "Methods"), on a
// task-sorted batch: beta * alpha^2 * KL(teacher || student) at temperature alpha, averaged over
// the batch. feature: teacher pooled features (standardised) through a trainable projection
// against the student's pooled features; logits: the teacher's unified logits restricted to each
// row's task classes against that task's head.
import { type Tensor, cat, klDiv, logSoftmax, softmax, crossEntropy } from '../../tensor/index.js';
import { UserError } from '../../tensor/errors.js';
import type { Routing } from '../../data/routing.js';
import { PLAIN_STEP, type TrainStep, type MethodContext, type TaskBatch, type RowTable } from './method.js';

/**
 * A teacher-cache tensor as a RowTable: a batch's rows gathered where the tensor lives (the device,
 * or the host) and delivered on the batch's device. The table owns the tensor.
 */
export function tensorRows(cache: Tensor): RowTable {
  return {
    width: cache.shape.length === 2 ? cache.size(1) : 0,
    rows: (rows) => (cache.device === rows.device ? cache.indexSelect(0, rows) : cache.indexSelect(0, rows.to(cache.device)).to(rows.device, { nonBlocking: true })),
    dispose: () => cache.dispose(),
  };
}

/** A batch's rows of a teacher-cache table. */
export const cacheRows = (cache: RowTable, rows: Tensor): Tensor => cache.rows(rows);

export type KdContext = NonNullable<MethodContext['kd']>;

/** Mean over the batch of each row's cross-entropy under its own task's head. */
export function taskCrossEntropy(logits: (Tensor | null)[], local: Tensor, routing: Routing): Tensor {
  const parts = logits.flatMap((l, t) => (l ? [crossEntropy(l, routing.slice(local, t), { reduction: 'sum' }).reshape([1])] : []));
  if (!parts.length) throw new UserError('a batch without rows');
  return cat(parts, 0).sum().div(routing.batchSize);
}

/**
 * The KD term of a batch. `features`: the student's pooled features (B, F) in batch order;
 * `project`: the trainable projection of teacher features (feature mode).
 */
export function kdTerm(
  kd: KdContext,
  out: { features: Tensor; logits: (Tensor | null)[] },
  batch: TaskBatch,
  tasks: MethodContext['tasks'],
  project: ((teacher: Tensor) => Tensor) | null,
): Tensor {
  if (batch.teacherRows === null) throw new UserError('knowledge distillation needs the teacher-cache rows of the batch');
  const w = kd.beta * kd.alpha * kd.alpha;
  if (kd.mode === 'feature') {
    if (!project) throw new UserError('feature KD needs a projection');
    const teacher = project(cacheRows(kd.features, batch.teacherRows)).div(kd.alpha);
    return klDiv(logSoftmax(out.features.div(kd.alpha), 1), softmax(teacher, 1), 'batchmean').mul(w);
  }
  const t = cacheRows(kd.logits, batch.teacherRows);
  const parts = out.logits.flatMap((l, k) => {
    if (!l) return [];
    const task = tasks[k]!;
    const teacher = batch.routing.slice(t, k).narrow(1, task.classOffset, task.classNames.length).div(kd.alpha);
    return [klDiv(logSoftmax(l.div(kd.alpha), 1), softmax(teacher, 1), 'sum').reshape([1])];
  });
  return cat(parts, 0).sum().div(batch.size).mul(w);
}

/** The method's loss: CE, plus the KD term when a teacher is given (beta 0 adds nothing). */
export function methodLoss(
  kd: KdContext | null,
  out: { features: Tensor; logits: (Tensor | null)[] },
  batch: TaskBatch,
  tasks: MethodContext['tasks'],
  project: ((teacher: Tensor) => Tensor) | null,
): Tensor {
  const ce = taskCrossEntropy(out.logits, batch.local, batch.routing);
  return kd && kd.beta !== 0 ? ce.add(kdTerm(kd, out, batch, tasks, project)) : ce;
}

/**
 * The backward of a single-network method: the loss (CE, plus KD through `projection` when a
 * teacher is given) of forward(batch), backpropagated; returns the loss.
 */
export function singleNetworkBackward(
  kd: KdContext | null,
  tasks: MethodContext['tasks'],
  forward: (b: TaskBatch) => { features: Tensor; logits: (Tensor | null)[] },
  projection: { forward(t: Tensor): Tensor } | null,
): (batch: TaskBatch, step?: TrainStep) => Tensor {
  return (batch, step = PLAIN_STEP) => {
    const loss = step.forward(() => methodLoss(kd, forward(batch), batch, tasks, projection ? (t) => projection.forward(t) : null));
    step.backward(loss);
    return loss;
  };
}
