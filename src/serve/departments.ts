// The departments a service answers for, each at one version. A version holds what serves it: a
// shared decomposition model (EKS: mixed tasks in one pass) and/or its own plain model (a fused
// expert, or an expert file). Versions are reference counted: a request takes a reference when it
// arrives and drops it when answered, so a hot replace or remove frees a model only after the
// requests that started on it are done.
import type { DecompositionModel } from '../lorkd/decomposition.js';
import type { ImageClassifier } from '../models/classifier.js';
import type { ExpertMeta } from '../export/expert-file.js';
import { UserError } from '../tensor/errors.js';
import { forgetPlan } from './forward.js';
import { OrtExpert } from './ort-expert.js';

/** A department's own model: lorkd's (a fused expert or an expert file) or an ONNX expert run by onnxruntime. */
export type PlainModel = ImageClassifier | OrtExpert;

/** How a department's images are turned into model input (an expert file's preprocessing record). */
export type Preprocessing = Pick<ExpertMeta, 'inputSize' | 'channels' | 'resize' | 'mean' | 'std'>;

/** A reference-counted owner: `free` runs when the last reference is dropped. */
class RefCounted {
  #refs = 0;
  constructor(private readonly free: () => void) {}
  acquire(): void {
    if (this.#refs <= 0) throw new Error('serve: acquire after the last release');
    this.#refs++;
  }
  /** The first reference (taken by the creator). */
  protected init(): void {
    this.#refs = 1;
  }
  release(): void {
    if (--this.#refs === 0) this.free();
  }
  get refs(): number {
    return this.#refs;
  }
}

let nextShared = 1;

/** A decomposition model (eval mode) shared by the departments it serves through EKS. */
export class SharedDecomposition extends RefCounted {
  readonly id = nextShared++;
  constructor(
    readonly model: DecompositionModel,
    readonly source: string,
  ) {
    super(() => {
      forgetPlan(model);
      model.dispose();
    });
    this.init();
  }
}

/** What a loader produces for one department (before the registry gives it a version number). */
export interface DepartmentSpec {
  task: string;
  classNames: string[];
  preprocessing: Preprocessing;
  /** The file it came from (with `#task` for a decomposition checkpoint). */
  source: string;
  /** Served through EKS by this shared model, as its task `index` (the spec holds one reference to it). */
  eks?: { shared: SharedDecomposition; index: number };
  /** Served by its own plain model (owned by the version from now on). */
  plain?: PlainModel;
  /** Architecture of the plain model (cost estimates are shared by equal architectures). */
  arch: string;
}

/** Frees a spec that will not become a version (its plain model and its reference to the shared model). */
export function disposeSpec(spec: DepartmentSpec): void {
  if (spec.plain) {
    if (!(spec.plain instanceof OrtExpert)) forgetPlan(spec.plain);
    spec.plain.dispose();
  }
  spec.eks?.shared.release();
}

/** One version of a department. Takes over its spec's models and reference to the shared model. */
export class DepartmentVersion extends RefCounted {
  readonly task: string;
  readonly version: number;
  readonly classNames: readonly string[];
  readonly preprocessing: Preprocessing;
  readonly source: string;
  readonly eks: { shared: SharedDecomposition; index: number } | null;
  readonly plain: PlainModel | null;
  readonly arch: string;

  constructor(spec: DepartmentSpec, version: number) {
    super(() => disposeSpec(spec));
    if (!spec.eks && !spec.plain) throw new Error(`serve: department "${spec.task}" has no model`);
    this.init();
    this.task = spec.task;
    this.version = version;
    this.classNames = spec.classNames.slice();
    this.preprocessing = spec.preprocessing;
    this.source = spec.source;
    this.eks = spec.eks ?? null;
    this.plain = spec.plain ?? null;
    this.arch = spec.arch;
  }

  /** The public description (GET /v1/tasks). */
  describe(): Record<string, unknown> {
    return {
      task: this.task,
      version: this.version,
      classNames: this.classNames,
      preprocessing: this.preprocessing,
      source: this.source,
      servedBy: [...(this.eks ? ['eks'] : []), ...(this.plain ? ['plain'] : [])],
      ...(this.plain instanceof OrtExpert ? { engine: 'onnxruntime' } : {}),
    };
  }
}

const TASK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Checks a department name (it appears in URLs and metric labels). */
export function checkTaskName(name: string): string {
  if (!TASK_NAME.test(name)) throw new UserError(`bad department name "${name}": 1-64 letters, digits, '_', '.', '-', starting with a letter or digit`);
  return name;
}

/** The current version of every department. */
export class Departments {
  readonly #current = new Map<string, DepartmentVersion>();
  #next = 1;

  get(task: string): DepartmentVersion | undefined {
    return this.#current.get(task);
  }
  list(): DepartmentVersion[] {
    return [...this.#current.values()];
  }
  get size(): number {
    return this.#current.size;
  }

  /** Adds or replaces a department; returns the new version and the one it replaced (now released). */
  put(spec: DepartmentSpec): { current: DepartmentVersion; replaced: DepartmentVersion | null } {
    try {
      checkTaskName(spec.task);
    } catch (e) {
      disposeSpec(spec);
      throw e;
    }
    const current = new DepartmentVersion(spec, this.#next++);
    const replaced = this.#current.get(spec.task) ?? null;
    this.#current.set(spec.task, current);
    replaced?.release();
    return { current, replaced };
  }

  /** Removes a department (its models are freed once its last request is answered). */
  remove(task: string): DepartmentVersion | null {
    const v = this.#current.get(task);
    if (!v) return null;
    this.#current.delete(task);
    v.release();
    return v;
  }

  /** Releases every department. */
  clear(): void {
    for (const t of [...this.#current.keys()]) this.remove(t);
  }
}
