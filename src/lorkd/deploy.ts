// Deployment (paper 3.4): parameter fusion and the task knowledge switch.
// Fusing task t turns the decomposition model into a plain backbone whose every expert conv
// weight is W_t = W0 + delta_t, with head t as its `fc`: the parameters and FLOPs of the plain
// backbone. Switching t -> t' recomputes W_t' = W0 + delta_t' from the stored W0 (never by
// subtracting delta_t), so any sequence of switches is drift-free. A deployed expert is a plain
// model: it holds one task's weights, so a mixed-task batch cannot run on it.
import { createModel } from '../models/registry.js';
import type { ImageClassifier } from '../models/classifier.js';
import type { Module } from '../nn/module.js';
import { type Tensor, addmm, stack, tidy, keep, noGrad } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import type { DecompositionModel, TaskSpec } from './decomposition.js';

/** One expert conv's stored state: W0 and the factors of every task. */
interface StoredExpert {
  /** Dotted path of the conv (the same in the decomposition model and the plain model). */
  path: string;
  weight: Tensor;
  expertA: Tensor;
  expertB: Tensor;
  scale: number;
}

interface StoredHead {
  weight: Tensor;
  bias: Tensor | null;
}

/** Task index from an index or a task name. */
function resolveTask(tasks: readonly TaskSpec[], task: number | string): number {
  if (typeof task === 'string') {
    const i = tasks.findIndex((s) => s.name === task);
    if (i < 0) throw new UserError(`unknown task "${task}"; tasks: ${tasks.map((s) => s.name).join(', ')}`);
    return i;
  }
  if (!Number.isInteger(task) || task < 0 || task >= tasks.length) throw new UserError(`task ${task} out of range [0, ${tasks.length})`);
  return task;
}

/**
 * The fused weight W0 + scale * reshape(B_t A_t, W0's shape), in W0's dtype: one addmm on W0 seen
 * as (Cout*k) x (Cin*k), the same row-major reinterpretation as delta_t. Deterministic: the same
 * inputs give the same bits, which makes switching drift-free. Detached; belongs to the current
 * tidy scope.
 */
export function fusedWeight(weight: Tensor, expertA: Tensor, expertB: Tensor, t: number, scale: number): Tensor {
  return noGrad(() =>
    tidy(() => {
      const b = expertB.select(0, t);
      const a = expertA.select(0, t);
      return addmm(weight.reshape([b.size(0), a.size(1)]), b, a, 1, scale).view(weight.shape);
    }),
  );
}

/**
 * Throws a UserError naming the first entry with a NaN or an infinity (PEFT's safe_merge). Fast
 * path: the sum of all values is finite unless some value is not (NaN and infinities propagate)
 * or the sum overflows; only then are the tensors checked one by one, exactly.
 */
function checkFinite(entries: (readonly [string, Tensor])[]): void {
  const total = noGrad(() => tidy(() => stack(entries.map(([, t]) => t.sum().double())).sum().item()));
  if (Number.isFinite(total)) return;
  for (const [what, t] of entries) {
    const ok = noGrad(() => tidy(() => t.isfinite().all().item() !== 0));
    if (!ok) throw new UserError(`${what} has non-finite values (NaN or infinity); nothing was changed`);
  }
}

function floatParameter(m: Module): Tensor {
  const p = m.parameters()[0];
  if (!p) throw new UserError('model has no parameters');
  return p;
}

/** A plain model of the decomposition model's backbone with `numClasses` outputs, in its dtype and device. */
function plainLike(dm: DecompositionModel, numClasses: number): ImageClassifier {
  const model = createModel(dm.config.model, { numClasses, inChannels: dm.config.inChannels });
  const ref = floatParameter(dm);
  if (ref.dtype !== 'float32') model.toDtype(ref.dtype);
  if (ref.device !== 'cpu') model.to(ref.device);
  return model.train(dm.training);
}

/**
 * Parameter fusion: a NEW plain model (`createModel(dm.config.model)` with an n_t-class head)
 * whose expert conv weights are W0 + delta_t, whose other parameters and buffers (BatchNorm
 * running statistics included) are copies of the decomposition model's, and whose `fc` is head t.
 * The decomposition model is not changed. The new model is in the decomposition model's mode,
 * dtype and device. Throws a UserError (and builds nothing) when a fused value is not finite.
 */
export function expertModel(dm: DecompositionModel, task: number | string): ImageClassifier {
  const t = resolveTask(dm.config.tasks, task);
  const taskName = dm.config.tasks[t]!.name;
  const model = plainLike(dm, dm.config.tasks[t]!.classNames.length);
  try {
    tidy(() => {
      const src = dm.stateDict();
      const experts = new Map(dm.expertConvs());
      const sd = new Map<string, Tensor>();
      const checked: (readonly [string, Tensor])[] = []; // the values that are new: fused weights and the head
      for (const key of model.stateDict().keys()) {
        const conv = key.endsWith('.weight') ? experts.get(key.slice(0, -'.weight'.length)) : undefined;
        if (key.startsWith('fc.')) {
          const from = `heads.${t}.${key.slice(3)}`;
          const v = src.get(from);
          if (!v) throw new UserError(`expertModel: the decomposition model has no "${from}"`);
          sd.set(key, v);
          checked.push([`head "${from}" of task "${taskName}"`, v]);
        } else if (conv) {
          const w = conv.weights();
          const fused = fusedWeight(w.weight, w.expertA, w.expertB, t, w.scale);
          sd.set(key, fused);
          checked.push([`expert "${key.slice(0, -'.weight'.length)}" of task "${taskName}"`, fused]);
        } else {
          const v = src.get(key);
          if (!v) throw new UserError(`expertModel: the decomposition model has no "${key}"`);
          sd.set(key, v);
        }
      }
      checkFinite(checked);
      model.loadStateDict(sd);
    });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** A copy that needs no gradient and belongs to no scope (clone under noGrad makes no intermediate). */
const detachedClone = (t: Tensor): Tensor => keep(noGrad(() => t.clone()));

/**
 * A deployed expert with task knowledge switching (paper 3.4): a plain model fused for one task,
 * plus, for every expert conv, the stored W0 and the factors of all tasks, and all heads.
 * `switchTo(t')` rewrites the model in place from the stored W0 (W_t' = W0 + delta_t'), so
 * t -> t' -> t gives bit-identical weights however often it is repeated. A deployed expert is a
 * plain model and runs one task at a time: mixed-task batches need the DecompositionModel.
 */
export class DeployedExpert {
  /** The plain model (backbone with fused weights, `fc` = head of the current task). */
  readonly model: ImageClassifier;
  /** Every task of the decomposition model, with class names. */
  readonly tasks: readonly TaskSpec[];
  #task: number;
  readonly #experts: StoredExpert[];
  readonly #heads: StoredHead[];

  private constructor(model: ImageClassifier, tasks: TaskSpec[], task: number, experts: StoredExpert[], heads: StoredHead[]) {
    this.model = model;
    this.tasks = tasks;
    this.#task = task;
    this.#experts = experts;
    this.#heads = heads;
  }

  /** Deploys task t of a decomposition model (which stays unchanged; the factors are copied). */
  static from(dm: DecompositionModel, task: number | string): DeployedExpert {
    const t = resolveTask(dm.config.tasks, task);
    const model = expertModel(dm, t);
    // The factors of every task, packed (one (T, ...) tensor each, see task-factors.ts) and copied.
    const experts: StoredExpert[] = tidy(() =>
      dm.expertConvs().map(([path, c]) => {
        const w = c.weights();
        return { path, weight: detachedClone(w.weight), expertA: detachedClone(w.expertA), expertB: detachedClone(w.expertB), scale: w.scale };
      }),
    );
    const heads: StoredHead[] = dm.config.tasks.map((_, i) => {
      const h = dm.head(i);
      return { weight: detachedClone(h.weight), bias: h.bias ? detachedClone(h.bias) : null };
    });
    return new DeployedExpert(model, dm.config.tasks.map((s) => ({ name: s.name, classNames: s.classNames.slice() })), t, experts, heads);
  }

  /** Index of the task the model holds now. */
  get task(): number {
    return this.#task;
  }
  get taskName(): string {
    return this.tasks[this.#task]!.name;
  }

  /**
   * Task knowledge switch, in place: every expert conv weight becomes W0 + delta_t' (from the
   * stored W0) and the head becomes head t' (re-created when its class count differs). Every new
   * value is checked to be finite before anything is written; on failure a UserError names the
   * layer and the model is unchanged. Switching to the current task does nothing.
   */
  switchTo(task: number | string): this {
    const t = resolveTask(this.tasks, task);
    if (t === this.#task) return this;
    const name = this.tasks[t]!.name;
    const head = this.#heads[t]!;
    tidy(() =>
      noGrad(() => {
        const next = this.#experts.map((e) => [e.path, fusedWeight(e.weight, e.expertA, e.expertB, t, e.scale)] as const);
        checkFinite([
          ...next.map(([path, w]) => [`switchTo("${name}"): expert "${path}"`, w] as const),
          [`switchTo("${name}"): head weight`, head.weight] as const,
          ...(head.bias ? [[`switchTo("${name}"): head bias`, head.bias] as const] : []),
        ]);
        // Commit: nothing above wrote to the model.
        for (const [path, w] of next) this.model.getSubmodule(path).getParameter('weight').copy_(w);
        if (this.model.numClasses !== head.weight.size(0)) {
          const ref = this.model.fc.weight;
          const [dtype, device] = [ref.dtype, ref.device];
          this.model.resetClassifier(head.weight.size(0));
          if (dtype !== 'float32') this.model.fc.toDtype(dtype);
          if (device !== 'cpu') this.model.fc.to(device);
          this.model.fc.train(this.model.training);
        }
        this.model.fc.weight.copy_(head.weight);
        if (head.bias && this.model.fc.bias) this.model.fc.bias.copy_(head.bias);
      }),
    );
    this.#task = t;
    return this;
  }

  /**
   * Logits of the current task. `taskIds`, when given, must all name the current task: a deployed
   * expert is a plain model and cannot run a mixed-task batch.
   */
  forward(x: Tensor, taskIds?: ArrayLike<number>): Tensor {
    if (taskIds !== undefined) {
      if (taskIds.length !== x.size(0)) throw new UserError(`${taskIds.length} task ids for a batch of ${x.size(0)}`);
      for (let i = 0; i < taskIds.length; i++) {
        if (taskIds[i] !== this.#task) {
          throw new UserError(
            `deployed expert holds task "${this.taskName}" (${this.#task}) but row ${i} is task ${taskIds[i]}: mixed-task batches need the DecompositionModel`,
          );
        }
      }
    }
    return this.model.forward(x);
  }

  /** Frees the model and the stored W0, factors and heads. */
  dispose(): void {
    this.model.dispose();
    for (const e of this.#experts) [e.weight, e.expertA, e.expertB].forEach((t) => t.dispose());
    for (const h of this.#heads) [h.weight, h.bias].forEach((t) => t?.dispose());
  }
}
