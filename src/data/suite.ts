// A multi-task suite: several classification tasks, concatenated in task order. Each sample has a
// task id, a local label (within its task) and a global label (local + the task's class offset),
// the latter for the foundation model's unified head.
import { createHash } from 'node:crypto';
import { UserError } from '../tensor/errors.js';
import { checkLimit } from '../io/limits.js';
import { type ImageSplit, type Split, SPLITS, type TaskData, type TaskType } from './dataset.js';
import { selectRows } from './image-folder.js';
import { gatherImages } from './gather.js';
import { loadMedMnist } from './medmnist.js';
import { type PackRef, RowStream, packIdentity } from './stream.js';

/** One task of a suite. */
export interface SuiteTask {
  /** Index of the task in the suite (the task id). */
  id: number;
  name: string;
  classNames: string[];
  numClasses: number;
  /** Global label of this task's class 0 (sum of the class counts of the tasks before it). */
  classOffset: number;
  task: TaskType;
  sizes: Record<Split, number>;
  data: TaskData;
}

/**
 * One split of a suite: the concatenation of the tasks' samples, task 0 first. Tasks may be
 * stored at different sizes (28x28 MedMNIST beside 64x64 tasks): each keeps its own bytes, and a
 * batch is resized to the input size where it is made (transforms.ts).
 */
export class SuiteSplit {
  readonly n: number;
  /** The common stored size, or the largest when the tasks differ (see `uniform`). */
  readonly height: number;
  readonly width: number;
  /** Stored size of each task's images. */
  readonly heights: number[];
  readonly widths: number[];
  /** True when every task has the same stored size. */
  readonly uniform: boolean;
  /** Samples per task, and the suite index of each task's first sample. */
  readonly taskSizes: number[];
  readonly taskStart: number[];
  /** Per suite index: task id, local label, global label. */
  readonly taskIds: Int32Array;
  readonly local: Int32Array;
  readonly global: Int32Array;
  /** Each task's uint8 CHW (3-channel) image buffer for this split. */
  readonly sources: Uint8Array[];
  /** Bytes of one sample of the largest size (3 * height * width). */
  readonly sampleBytes: number;
  /** Per task: its pack when its rows are streamed (null: in memory, in `sources`). */
  readonly packs: (PackRef | null)[];
  #stream: RowStream | null = null;

  constructor(
    readonly split: Split,
    tasks: readonly SuiteTask[],
  ) {
    const parts = tasks.map((t) => t.data.splits[split]);
    this.heights = parts.map((p) => p.height);
    this.widths = parts.map((p) => p.width);
    this.uniform = parts.every((p) => p.height === parts[0]!.height && p.width === parts[0]!.width);
    this.height = Math.max(...this.heights);
    this.width = Math.max(...this.widths);
    this.sampleBytes = 3 * this.height * this.width;
    this.taskSizes = parts.map((p) => p.n);
    this.taskStart = [];
    let n = 0;
    for (const p of parts) {
      this.taskStart.push(n);
      n += p.n;
    }
    this.n = n;
    this.taskIds = new Int32Array(n);
    this.local = new Int32Array(n);
    this.global = new Int32Array(n);
    tasks.forEach((task, t) => {
      const p = parts[t]!;
      const s = this.taskStart[t]!;
      this.taskIds.fill(t, s, s + p.n);
      this.local.set(p.labels, s);
      for (let i = 0; i < p.n; i++) this.global[s + i] = p.labels[i]! + task.classOffset;
    });
    this.sources = parts.map((p) => p.images);
    this.packs = parts.map((p) => p.pack ?? null);
  }

  /** True when some task's rows are streamed from a pack. */
  get streamed(): boolean {
    return this.packs.some((p) => p !== null);
  }

  /** The stream of a split with packed tasks (started on first use; null for an in-memory split). */
  get stream(): RowStream | null {
    if (!this.streamed) return null;
    this.#stream ??= new RowStream(this);
    return this.#stream;
  }

  #identity: string | null = null;

  /**
   * What the split's data is, for cache keys (the teacher cache): a hash of its labels and of its
   * in-memory images (one pass over what is in memory already) or, for a packed task, of its pack's
   * shard checksums and which task and split it is (no pixel is read). Computed once.
   */
  identity(): string {
    if (this.#identity === null) {
      const h = createHash('sha256');
      this.sources.forEach((s, t) => h.update(this.packs[t] ? packIdentity(this.packs[t]!) : s));
      h.update(new Uint8Array(this.global.buffer, this.global.byteOffset, this.global.byteLength));
      h.update(JSON.stringify([this.heights, this.widths, this.taskSizes]));
      this.#identity = h.digest('hex');
    }
    return this.#identity;
  }

  /** The row of suite sample i within its task. */
  rowOf(i: number): number {
    return i - this.taskStart[this.taskIds[i]!]!;
  }
}

/** One task as the only task of a split view (its rows, whether in memory or packed, read through it). */
export function taskSplit(d: TaskData, split: Split): SuiteSplit {
  const sizes = { train: d.splits.train.n, val: d.splits.val.n, test: d.splits.test.n };
  return new SuiteSplit(split, [{ id: 0, name: d.name, classNames: d.classNames, numClasses: d.classNames.length, classOffset: 0, task: d.task, sizes, data: d }]);
}

/**
 * Rows `rows` of a task's split as an in-memory ImageSplit: copied, or read from its pack (the
 * centre of a JPEG row) when the task is packed. For small selections (a probe set).
 */
export function splitRows(d: TaskData, split: Split, rows: ArrayLike<number>): ImageSplit {
  const s = d.splits[split];
  if (!s.pack) return selectRows(s, rows);
  const images = gatherImages(taskSplit(d, split), Int32Array.from(rows));
  return { n: rows.length, channels: 3, height: s.height, width: s.width, images, labels: Int32Array.from(rows, (r) => s.labels[r]!) };
}

const SPLIT_USE: Record<Split, string> = {
  train: 'nothing to train on',
  val: 'validation picks the best epoch',
  test: 'evaluation needs it',
};

/**
 * Refuses a task no run can use, naming its file (or name), the split and what is wrong: fewer
 * than 2 classes, or an empty train, val or test split.
 */
export function checkTask(d: TaskData): void {
  const src = (d as { file?: string }).file ?? d.name;
  const fail = (msg: string): never => {
    throw new UserError(`${src}: task '${d.name}' ${msg}`);
  };
  if (d.classNames.length < 2) fail(`has ${d.classNames.length === 1 ? `a single class ('${d.classNames[0]}')` : 'no classes'}: a classifier needs at least 2`);
  for (const s of SPLITS) if (d.splits[s].n === 0) fail(`has no images in its ${s} split (${SPLIT_USE[s]})`);
}

/** Several tasks with cumulative class offsets. */
export class TaskSuite {
  readonly tasks: readonly SuiteTask[];
  /** Sum of the tasks' class counts (size of a unified head). */
  readonly totalClasses: number;
  #splits = new Map<Split, SuiteSplit>();

  /** Every task is checked (checkTask): at least 2 classes and no empty split. */
  constructor(datasets: readonly TaskData[]) {
    if (datasets.length === 0) throw new UserError('a task suite needs at least one task');
    checkLimit('tasks', datasets.length, `a suite of ${datasets.length} tasks`);
    const seen = new Set<string>();
    let offset = 0;
    this.tasks = datasets.map((d, id) => {
      if (seen.has(d.name)) throw new UserError(`task '${d.name}' appears twice in the suite`);
      seen.add(d.name);
      checkTask(d);
      const t: SuiteTask = {
        id,
        name: d.name,
        classNames: d.classNames.slice(),
        numClasses: d.classNames.length,
        classOffset: offset,
        task: d.task,
        sizes: { train: d.splits.train.n, val: d.splits.val.n, test: d.splits.test.n },
        data: d,
      };
      offset += t.numClasses;
      return t;
    });
    this.totalClasses = offset;
  }

  /** Loads MedMNIST subsets (bundled names or .npz paths) into a suite, in the order given. */
  static fromMedMnist(sources: readonly string[]): TaskSuite {
    return new TaskSuite(sources.map((s) => loadMedMnist(s)));
  }

  get numTasks(): number {
    return this.tasks.length;
  }

  /** The task with this name (UserError listing the names otherwise). */
  task(name: string): SuiteTask {
    const t = this.tasks.find((x) => x.name === name);
    if (!t) throw new UserError(`no task '${name}' in the suite (tasks: ${this.tasks.map((x) => x.name).join(', ')})`);
    return t;
  }

  /** Global class names, "task/class", in global label order. */
  globalClassNames(): string[] {
    return this.tasks.flatMap((t) => t.classNames.map((c) => `${t.name}/${c}`));
  }

  /** Global label of class `local` of task `taskId`. */
  globalLabel(taskId: number, local: number): number {
    const t = this.tasks[taskId];
    if (!t || !(local >= 0 && local < t.numClasses)) throw new RangeError(`no class ${local} in task ${taskId}`);
    return t.classOffset + local;
  }

  /** Task id and local label of a global label. */
  fromGlobal(global: number): { taskId: number; local: number } {
    for (const t of this.tasks) if (global >= t.classOffset && global < t.classOffset + t.numClasses) return { taskId: t.id, local: global - t.classOffset };
    throw new RangeError(`global label ${global} is outside [0, ${this.totalClasses})`);
  }

  /** The concatenated view of one split (built once, then cached). */
  split(s: Split): SuiteSplit {
    if (!SPLITS.includes(s)) throw new UserError(`unknown split '${s}' (splits: ${SPLITS.join(', ')})`);
    let v = this.#splits.get(s);
    if (!v) {
      v = new SuiteSplit(s, this.tasks);
      this.#splits.set(s, v);
    }
    return v;
  }
}
