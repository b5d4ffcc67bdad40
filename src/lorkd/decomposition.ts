// The decomposition model (paper 3): a shared ShuffleNetV2 backbone whose every non-depthwise
// convolution carries T low-rank experts, plus per-task heads h_t: Linear(C_final, n_t).
// State keys: the backbone's torchvision names (conv1.0.weight, stage2.0.branch2.0.weight, ...),
// expert factors beside each conv weight, keyed by task (....expertA.<task> / ....expertB.<task>),
// heads as heads.<t>.weight. Tasks can be added (grow) and removed (retire) after training.
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/conv.js';
import { Linear } from '../nn/linear.js';
import { Sequential } from '../nn/sequential.js';
import { createModel } from '../models/registry.js';
import type { ImageClassifier } from '../models/classifier.js';
import { type Tensor, routedLinear, tensor, tidy } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { ExpertConv2d, checkRank, type ExpertTask } from './expert-conv.js';
import { Routing, sortByTask } from './routing.js';
import type { Strategy, StrategyOption } from './strategies.js';
import { AutoStrategy } from './auto.js';

export interface TaskSpec {
  name: string;
  classNames: string[];
  /** This task's expert rank r_t (default: the config's rank). */
  rank?: number;
  /** This task's scaling numerator (default: the config's loraAlpha, else r_t). */
  loraAlpha?: number;
}

/** A task of a built model: its rank and scaling numerator resolved. */
export type ExpertTaskSpec = TaskSpec & ExpertTask;

/** One rank for every task, or a rank per task name (`--rank a=4,b=8`). */
export type RankSpec = number | Record<string, number>;

export interface DecompositionConfig {
  /** Backbone model name (default shufflenet_v2_x1_0). */
  model?: string;
  tasks: TaskSpec[];
  /** Rank r of every expert (paper default 8), or a rank per task name. A task's own `rank` wins. */
  rank?: RankSpec;
  /** delta = B A * loraAlpha / r_t (default loraAlpha = r_t, scale 1). */
  loraAlpha?: number;
  /** EKS strategy (default auto). */
  strategy?: StrategyOption;
  inChannels?: number;
}

/** The output of a forward over a task-sorted batch. */
export interface RoutedOutput {
  /** Pooled features (B, C_final), in the batch's (sorted) order. */
  features: Tensor;
  /** Per task: logits (n_t, classes_t) of its rows, or null when the task has no rows. */
  logits: (Tensor | null)[];
}

export interface DecompositionOutput extends RoutedOutput {
  /** Sorted position i holds original row order[i]. */
  order: number[];
  routing: Routing;
}

/** Every task with its rank and scaling numerator resolved; refuses duplicates and bad names in one line. */
function resolveTasks(config: Pick<DecompositionConfig, 'tasks' | 'rank' | 'loraAlpha'>): ExpertTaskSpec[] {
  const names = new Set<string>();
  const spec = config.rank ?? 8;
  if (typeof spec === 'object') {
    const unknown = Object.keys(spec).filter((n) => !config.tasks.some((t) => t.name === n));
    if (unknown.length) throw new UserError(`rank given for unknown task${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; tasks: ${config.tasks.map((t) => t.name).join(', ')}`);
  }
  return config.tasks.map((t) => {
    if (names.has(t.name)) throw new UserError(`duplicate task name "${t.name}"`);
    if (t.name === '' || t.name.includes('.')) throw new UserError(`task name "${t.name}" must be non-empty and without "."`);
    names.add(t.name);
    if (t.classNames.length < 1) throw new UserError(`task "${t.name}" has no classes`);
    const rank = t.rank ?? (typeof spec === 'number' ? spec : spec[t.name]);
    if (rank === undefined) throw new UserError(`no rank for task "${t.name}" in the rank map`);
    checkRank(rank, t.name);
    return { name: t.name, classNames: t.classNames.slice(), rank, loraAlpha: t.loraAlpha ?? config.loraAlpha ?? rank };
  });
}

/** Rows of x in the given order, in x's memory format (indexSelect alone returns NCHW). */
function sortRows(x: Tensor, order: number[]): Tensor {
  const y = x.indexSelect(0, tensor(order, [order.length], { dtype: 'int64' }));
  return x.ndim === 4 && !x.isContiguous() && x.isContiguous('channels_last') ? y.contiguous('channels_last') : y;
}

export class DecompositionModel extends Module {
  readonly config: { model: string; tasks: ExpertTaskSpec[]; strategy: StrategyOption; inChannels: number };
  readonly backbone: ImageClassifier;
  readonly auto: AutoStrategy;

  constructor(config: DecompositionConfig) {
    super();
    if (!config.tasks.length) throw new UserError('decomposition model needs at least one task');
    const tasks = resolveTasks(config);
    this.config = { model: config.model ?? 'shufflenet_v2_x1_0', tasks, strategy: config.strategy ?? 'auto', inChannels: config.inChannels ?? 3 };
    this.backbone = createModel(this.config.model, { numClasses: 1, inChannels: this.config.inChannels });
    // Inject the experts into every non-depthwise convolution (PEFT's inject_adapter).
    const experts = tasks.map((t) => ({ name: t.name, rank: t.rank, loraAlpha: t.loraAlpha }));
    for (const [name, m] of this.backbone.namedModules()) {
      if (m instanceof Conv2d && m.groups === 1) this.backbone.setSubmodule(name, new ExpertConv2d(m, { tasks: experts }));
    }
    // The backbone's children (all but its placeholder fc) become ours, so keys stay torchvision's.
    for (const [name, child] of this.backbone.namedChildren()) if (name !== 'fc') this.registerModule(name, child);
    this.registerModule('heads', new Sequential(...tasks.map((t) => new Linear(this.backbone.numFeatures, t.classNames.length))));
    this.auto = new AutoStrategy(this);
  }

  get numTasks(): number {
    return this.config.tasks.length;
  }
  /** Every task's rank by name: one number when all are equal. */
  get rank(): RankSpec {
    const ranks = this.config.tasks.map((t) => t.rank);
    return ranks.every((r) => r === ranks[0]) ? ranks[0]! : Object.fromEntries(this.config.tasks.map((t) => [t.name, t.rank]));
  }

  /**
   * Adds a task after the others (grow): a new expert (B = 0, so delta starts at 0) in every expert
   * conv and a new head, in the model's dtype and device. Nothing else changes: W0, BatchNorm
   * buffers and the other tasks' experts and heads keep their tensors. Returns its index.
   */
  addTask(spec: TaskSpec & { rank: number }): number {
    const [task] = resolveTasks({ tasks: [...this.config.tasks, spec] }).slice(-1) as [ExpertTaskSpec];
    const ref = this.getModule<Sequential>('heads').getModule<Linear>('0').weight;
    for (const [, c] of this.expertConvs()) c.addTask({ name: task.name, rank: task.rank, loraAlpha: task.loraAlpha });
    const head = new Linear(this.numFeatures, task.classNames.length);
    if (ref.dtype !== 'float32') head.toDtype(ref.dtype);
    if (ref.device !== 'cpu') head.to(ref.device);
    this.registerModule('heads', new Sequential(...this.config.tasks.map((_, t) => this.head(t)), head.train(this.training)));
    this.config.tasks.push(task);
    this.auto.reset();
    return this.numTasks - 1;
  }

  /** Removes a task (retire): its experts and head are freed; every other tensor is untouched. */
  removeTask(name: string): void {
    const t = this.taskIndex(name);
    if (this.numTasks === 1) throw new UserError(`task "${name}" is the only task of this decomposition`);
    for (const [, c] of this.expertConvs()) c.removeTask(name);
    const keepHeads = this.config.tasks.map((_, i) => this.head(i));
    const [gone] = keepHeads.splice(t, 1);
    this.registerModule('heads', new Sequential(...keepHeads));
    gone!.dispose();
    this.config.tasks.splice(t, 1);
    this.auto.reset();
  }
  get numFeatures(): number {
    return this.backbone.numFeatures;
  }
  expertConvs(): [string, ExpertConv2d][] {
    return this.namedModules().filter((e): e is [string, ExpertConv2d] => e[1] instanceof ExpertConv2d);
  }
  head(t: number): Linear {
    return this.getModule<Sequential>('heads').getModule<Linear>(String(t));
  }
  taskIndex(name: string): number {
    const i = this.config.tasks.findIndex((t) => t.name === name);
    if (i < 0) throw new UserError(`unknown task "${name}"; tasks: ${this.config.tasks.map((t) => t.name).join(', ')}`);
    return i;
  }

  /**
   * The EKS strategy a forward of x under `routing` runs: the configured one, or for `auto` the
   * fastest measured for this input shape (measured once per shape, see AutoStrategy). A plain
   * value: record it, send it to other processes, pass it back to forwardRouted.
   */
  chooseStrategy(x: Tensor, routing: Routing, training: boolean = this.training): Strategy {
    return this.config.strategy === 'auto' ? this.auto.pick(x, routing, training) : this.config.strategy;
  }

  /** Backbone features of an already task-sorted batch under the given routing. */
  featuresSorted(x: Tensor, routing: Routing, strategy?: Strategy): Tensor {
    this.#checkRouting(x, routing);
    return this.backbone.forwardFeatures(x, routing, strategy ?? this.chooseStrategy(x, routing));
  }

  /**
   * The forward of a batch already sorted by task (docs/ARCHITECTURE.md, "The seam"): each row
   * sees W0 + delta of its task and is classified by its task's head. Routing and strategy are
   * arguments; nothing is stored on the model, so calls are reentrant. The memory format of x
   * (channels_last for the fused native path) is kept.
   */
  forwardRouted(x: Tensor, routing: Routing, strategy?: Strategy): RoutedOutput {
    this.#checkRouting(x, routing);
    const s = strategy ?? this.chooseStrategy(x, routing);
    return tidy(() => {
      const features = this.backbone.forwardFeatures(x, routing, s);
      return { features, logits: this.#headLogits(features, routing) };
    });
  }

  /** Each present task's rows through its head: one native call where every head has a bias. */
  #headLogits(features: Tensor, routing: Routing): (Tensor | null)[] {
    const heads = routing.counts.map((_, t) => this.head(t));
    const biases = heads.map((h) => h.bias);
    if (biases.every((b) => b !== null)) return routedLinear(features, routing.counts, heads.map((h) => h.weight), biases as Tensor[]);
    return routing.counts.map((c, t) => (c === 0 ? null : heads[t]!.forward(routing.slice(features, t))));
  }

  #checkRouting(x: Tensor, routing: Routing): void {
    if (!(routing instanceof Routing)) throw new UserError('the decomposition model needs a Routing of the batch');
    if (routing.numTasks !== this.numTasks) throw new UserError(`a routing over ${routing.numTasks} tasks for a model of ${this.numTasks} tasks`);
    if (routing.batchSize !== x.size(0)) throw new UserError(`${routing.batchSize} task ids for a batch of ${x.size(0)}`);
  }

  /**
   * A batch of mixed tasks in any row order (a thin wrapper of forwardRouted for callers that hold
   * unsorted rows): rows are sorted by task here (see `order`), keeping x's memory format.
   * Training and evaluation get batches sorted by the loader and call forwardRouted directly.
   */
  forwardTasks(x: Tensor, taskIds: ArrayLike<number>, strategy?: Strategy): DecompositionOutput {
    if (taskIds.length !== x.size(0)) throw new UserError(`${taskIds.length} task ids for a batch of ${x.size(0)}`);
    const { order, counts } = sortByTask(taskIds, this.numTasks);
    const routing = new Routing(counts);
    try {
      return tidy(() => {
        const sorted = order.every((o, i) => o === i) ? x : sortRows(x, order);
        return { order, routing, ...this.forwardRouted(sorted, routing, strategy) };
      });
    } finally {
      routing.dispose(); // autograd keeps its own reference to the task-id tensor
    }
  }

  /** Frees every parameter and buffer, including the backbone's unused placeholder `fc`. */
  override dispose(): void {
    super.dispose();
    this.backbone.fc.dispose();
  }

  /** Pooled features in the caller's row order (Module.forward). */
  override forward(x: Tensor, taskIds?: unknown): Tensor {
    if (!Array.isArray(taskIds) && !ArrayBuffer.isView(taskIds)) throw new UserError('DecompositionModel.forward(x, taskIds) needs task ids');
    const ids = taskIds as ArrayLike<number>;
    return tidy(() => {
      const out = this.forwardTasks(x, ids);
      const inverse = new Array<number>(out.order.length);
      out.order.forEach((o, i) => (inverse[o] = i));
      return out.features.indexSelect(0, tensor(inverse, [inverse.length], { dtype: 'int64' }));
    });
  }
}
