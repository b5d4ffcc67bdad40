// The decomposition model (paper 3): a shared ShuffleNetV2 backbone whose every non-depthwise
// convolution carries T low-rank experts, plus per-task heads h_t: Linear(C_final, n_t).
// State keys: the backbone's torchvision names (conv1.0.weight, stage2.0.branch2.0.weight, ...),
// expert factors beside each conv weight (....expertA / ....expertB), heads as heads.<t>.weight.
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/conv.js';
import { Linear } from '../nn/linear.js';
import { Sequential } from '../nn/sequential.js';
import { createModel } from '../models/registry.js';
import type { ImageClassifier } from '../models/classifier.js';
import { type Tensor, tensor, tidy } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { ExpertConv2d } from './expert-conv.js';
import { Routing, sortByTask } from './routing.js';
import type { Strategy, StrategyOption } from './strategies.js';
import { AutoStrategy } from './auto.js';

export interface TaskSpec {
  name: string;
  classNames: string[];
}

export interface DecompositionConfig {
  /** Backbone model name (default shufflenet_v2_x1_0). */
  model?: string;
  tasks: TaskSpec[];
  /** Rank r of every expert (paper default 8). */
  rank?: number;
  /** delta = B A * loraAlpha / r (default loraAlpha = r). */
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

/** Rows of x in the given order, in x's memory format (indexSelect alone returns NCHW). */
function sortRows(x: Tensor, order: number[]): Tensor {
  const y = x.indexSelect(0, tensor(order, [order.length], { dtype: 'int64' }));
  return x.ndim === 4 && !x.isContiguous() && x.isContiguous('channels_last') ? y.contiguous('channels_last') : y;
}

export class DecompositionModel extends Module {
  readonly config: Required<Omit<DecompositionConfig, 'strategy'>> & { strategy: StrategyOption };
  readonly backbone: ImageClassifier;
  readonly auto: AutoStrategy;

  constructor(config: DecompositionConfig) {
    super();
    if (!config.tasks.length) throw new UserError('decomposition model needs at least one task');
    const names = new Set<string>();
    for (const t of config.tasks) {
      if (names.has(t.name)) throw new UserError(`duplicate task name "${t.name}"`);
      names.add(t.name);
      if (t.classNames.length < 1) throw new UserError(`task "${t.name}" has no classes`);
    }
    this.config = {
      model: config.model ?? 'shufflenet_v2_x1_0',
      tasks: config.tasks.map((t) => ({ name: t.name, classNames: t.classNames.slice() })),
      rank: config.rank ?? 8,
      loraAlpha: config.loraAlpha ?? config.rank ?? 8,
      strategy: config.strategy ?? 'auto',
      inChannels: config.inChannels ?? 3,
    };
    const T = config.tasks.length;
    this.backbone = createModel(this.config.model, { numClasses: 1, inChannels: this.config.inChannels });
    // Inject the experts into every non-depthwise convolution (PEFT's inject_adapter).
    for (const [name, m] of this.backbone.namedModules()) {
      if (m instanceof Conv2d && m.groups === 1) {
        this.backbone.setSubmodule(name, new ExpertConv2d(m, { numTasks: T, rank: this.config.rank, loraAlpha: this.config.loraAlpha }));
      }
    }
    // The backbone's children (all but its placeholder fc) become ours, so keys stay torchvision's.
    for (const [name, child] of this.backbone.namedChildren()) if (name !== 'fc') this.registerModule(name, child);
    const heads = new Sequential(...this.config.tasks.map((t) => new Linear(this.backbone.numFeatures, t.classNames.length)));
    this.registerModule('heads', heads);
    this.auto = new AutoStrategy(this);
  }

  get numTasks(): number {
    return this.config.tasks.length;
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
      const logits = routing.counts.map((c, t) => (c === 0 ? null : this.head(t).forward(routing.slice(features, t))));
      return { features, logits };
    });
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
