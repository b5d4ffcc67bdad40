// Low-rank expert convolution (paper 3.1): a shared convolution W0 plus one low-rank expert per
// task. Keys: `weight` (W0, torchvision's name, so backbone checkpoints load), and per task
// `expertA.<task>` (r_t*k, Cin*k) and `expertB.<task>` (Cout*k, r_t*k): each task's factors are
// its own parameters (see task-factors.ts), so one task can be added, frozen or removed alone.
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/conv.js';
import { type Tensor, empty, zeros, noGrad, tidy } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { uniform } from '../nn/init.js';
import { RUN, type Strategy, type ExpertWeights, expertDelta } from './strategies.js';
import { Routing } from './routing.js';
import { TaskParameters, packFactors, type TaskFactors, type PackedFactors } from './task-factors.js';

/** One task's expert: its name, rank r_t and scaling numerator (delta = B A * loraAlpha / r_t). */
export interface ExpertTask {
  name: string;
  rank: number;
  loraAlpha: number;
}

export interface ExpertOptions {
  /** The tasks, in routing order. */
  tasks: ExpertTask[];
}

/** Refuses a rank that is not a positive integer, in one line naming the task. */
export function checkRank(rank: number, task: string): void {
  if (!(Number.isInteger(rank) && rank >= 1)) throw new UserError(`rank of task "${task}" must be a positive integer, got ${rank}`);
}

export class ExpertConv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  #tasks: ExpertTask[] = [];

  /** Wraps an existing (non-depthwise, square-kernel, bias-free) Conv2d: W0 starts as its weight. */
  constructor(base: Conv2d, o: ExpertOptions) {
    super();
    if (base.groups !== 1) throw new UserError('ExpertConv2d: depthwise/grouped convolutions stay shared');
    if (base.kernelSize[0] !== base.kernelSize[1]) throw new UserError('ExpertConv2d: square kernels only');
    if (base.hasParameter('bias')) throw new UserError('ExpertConv2d: convolutions with bias are not supported');
    if (o.tasks.length < 1) throw new UserError('ExpertConv2d: at least one task');
    this.inChannels = base.inChannels;
    this.outChannels = base.outChannels;
    this.kernelSize = base.kernelSize[0];
    this.stride = base.stride;
    this.padding = base.padding;
    this.dilation = base.dilation;
    this.registerParameter('weight', base.getParameter('weight'));
    this.registerModule('expertA', new TaskParameters());
    this.registerModule('expertB', new TaskParameters());
    for (const t of o.tasks) this.addTask(t);
  }

  get numTasks(): number {
    return this.#tasks.length;
  }
  get tasks(): readonly ExpertTask[] {
    return this.#tasks;
  }

  /**
   * Adds task t's expert after the others: A ~ kaiming-uniform(a = sqrt 5), i.e.
   * U(-1/sqrt(Cin*k), 1/sqrt(Cin*k)), and B = 0, in W0's dtype and device (delta starts at 0).
   */
  addTask(t: ExpertTask): void {
    checkRank(t.rank, t.name);
    if (!Number.isFinite(t.loraAlpha)) throw new UserError(`lora alpha of task "${t.name}" must be a finite number`);
    if (this.#tasks.some((s) => s.name === t.name)) throw new UserError(`task "${t.name}" already has an expert`);
    const k = this.kernelSize;
    const w0 = this.getParameter('weight');
    const o = { dtype: w0.dtype, device: w0.device };
    const bound = 1 / Math.sqrt(this.inChannels * k);
    noGrad(() => {
      this.getModule('expertA').registerParameter(t.name, uniform(empty([t.rank * k, this.inChannels * k], o), -bound, bound));
      this.getModule('expertB').registerParameter(t.name, zeros([this.outChannels * k, t.rank * k], o));
    });
    this.#tasks.push({ ...t });
  }

  /** Removes task `name`'s expert and frees its factors; the other tasks' tensors are untouched. */
  removeTask(name: string): void {
    const i = this.#tasks.findIndex((t) => t.name === name);
    if (i < 0) throw new UserError(`no expert for task "${name}"`);
    if (this.#tasks.length === 1) throw new UserError(`task "${name}" is the only one`);
    this.getModule('expertA').removeParameter(name).dispose();
    this.getModule('expertB').removeParameter(name).dispose();
    this.#tasks.splice(i, 1);
  }

  /** Task t's own factors (parameters of this module) and scale. */
  factors(t: number): TaskFactors {
    const s = this.#tasks[t];
    if (!s) throw new UserError(`task ${t} out of range [0, ${this.#tasks.length})`);
    return { a: this.getModule('expertA').getParameter(s.name), b: this.getModule('expertB').getParameter(s.name), rank: s.rank, scale: s.loraAlpha / s.rank };
  }

  /**
   * W0 and the factors of tasks `only` (default: every task, in order) as the EKS strategies take
   * them: each task's own parameters (`tasks`), and the (T, ...) packing of them (see
   * packFactors), made on first read of `expertA`, `expertB` or `scale` (routed and loop never
   * read them, so never pack).
   */
  weights(only?: readonly number[]): ExpertWeights {
    const tasks = (only ?? this.#tasks.map((_, t) => t)).map((t) => this.factors(t));
    let packed: PackedFactors | undefined;
    const pack = (): PackedFactors => (packed ??= packFactors(tasks));
    return {
      weight: this.getParameter('weight'),
      get expertA() {
        return pack().expertA;
      },
      get expertB() {
        return pack().expertB;
      },
      get scale() {
        return pack().scale;
      },
      tasks,
      conv: { stride: this.stride, padding: this.padding, dilation: this.dilation },
    };
  }

  /** delta_t, detached (for fusion and analysis). */
  delta(t: number): Tensor {
    return noGrad(() => tidy(() => expertDelta(this.weights(), t)));
  }

  /**
   * Rows of x are sorted by task as `routing` says; each is convolved with W0 + delta of its task
   * by `strategy`. Tasks without rows are left out of the pass (their factors get no gradient). Both are arguments of the call: nothing is stored between calls, so a forward
   * is reentrant (docs/ARCHITECTURE.md, "The seam").
   */
  override forward(x: Tensor, routing: Routing, strategy: Strategy = 'fused'): Tensor {
    if (!(routing instanceof Routing)) throw new UserError('ExpertConv2d: no task routing given (call the decomposition model with a routing)');
    if (routing.batchSize !== x.size(0)) throw new UserError(`ExpertConv2d: ${routing.batchSize} task ids for a batch of ${x.size(0)}`);
    if (routing.numTasks !== this.numTasks) throw new UserError(`ExpertConv2d: a routing over ${routing.numTasks} tasks for ${this.numTasks} experts`);
    if (!Object.hasOwn(RUN, strategy)) throw new UserError(`ExpertConv2d: unknown EKS strategy ${String(strategy)}`);
    // Only the tasks with rows take part: an absent task's factors get no gradient (as its head),
    // whatever the strategy, and are not packed.
    const present = routing.presentOnly();
    return RUN[strategy](x, this.weights(present === routing ? undefined : routing.present()), present);
  }
}
