// How a micro-batch is split into forward passes, and `auto`'s choice between the two ways, made
// from measurement of the batches the service actually runs:
// - eks: the rows of every department of one decomposition model go through one EKS pass;
// - fused: each department's rows go through its own fused expert (a plain model).
// Departments that only have a plain model (expert files) run on it either way. `auto` keeps a
// running estimate of milliseconds per row for each kind of pass (EKS by batch-size bucket and
// number of departments present; plain by architecture and batch-size bucket), tries a way it
// has no estimate for yet, then takes the cheaper estimate, and re-tries the other way every
// EXPLORE_EVERY batches of the same shape so the choice follows the load. A batch of a single
// department runs on its fused expert without measuring (the same function, fewer FLOPs).
import type { Tensor } from '../tensor/index.js';
import type { DepartmentVersion, PlainModel, SharedDecomposition } from './departments.js';
import type { ServeMode } from './load.js';

/** A request waiting for (or in) a forward pass. */
export interface Job {
  version: DepartmentVersion;
  /** Preprocessed input (1, C, S, S), owned by the batcher once submitted. */
  input: Tensor;
  /** performance.now() at arrival. */
  arrived: number;
  resolve(r: JobResult): void;
  reject(e: Error): void;
}

export type Path = 'eks' | 'plain';

export interface JobResult {
  probs: Float32Array;
  path: Path;
  /** Requests in the micro-batch it ran in (all departments). */
  batch: number;
}

export type Pass =
  | { path: 'eks'; shared: SharedDecomposition; jobs: Job[] }
  | { path: 'plain'; model: PlainModel; jobs: Job[] };

/** Power-of-two bucket of a row count. */
const bucket = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

/** Splits jobs into passes: EKS where `eks(job)` says so (and the job has a shared model), else plain. */
export function passes(jobs: Job[], eks: (j: Job) => boolean): Pass[] {
  const shared = new Map<SharedDecomposition, Job[]>();
  const plain = new Map<PlainModel, Job[]>();
  const add = <K>(m: Map<K, Job[]>, k: K, j: Job) => (m.get(k) ?? m.set(k, []).get(k)!).push(j);
  for (const j of jobs) {
    const v = j.version;
    if (v.eks && (eks(j) || !v.plain)) add(shared, v.eks.shared, j);
    else add(plain, v.plain!, j);
  }
  return [
    // EKS rows sorted by task index (Array.prototype.sort is stable), as forwardRouted takes them.
    ...[...shared].map(([s, js]) => ({ path: 'eks' as const, shared: s, jobs: js.sort((a, b) => a.version.eks!.index - b.version.eks!.index) })),
    ...[...plain].map(([model, js]) => ({ path: 'plain' as const, model, jobs: js })),
  ];
}

/** The cost key of a pass: what its time per row depends on. */
export function costKey(p: Pass): string {
  if (p.path === 'eks') return `eks:${p.shared.id}:k${new Set(p.jobs.map((j) => j.version.eks!.index)).size}:b${bucket(p.jobs.length)}`;
  return `plain:${p.jobs[0]!.version.arch}:b${bucket(p.jobs.length)}`;
}

export const EXPLORE_EVERY = 16;
const ALPHA = 0.3;

/** Picks the passes of each micro-batch for a mode; in `auto`, from measured pass times. */
export class Planner {
  readonly #msPerRow = new Map<string, number>();
  readonly #seen = new Map<string, number>();
  /** Batches planned by auto, by the way chosen. */
  readonly choices = { eks: 0, fused: 0 };

  constructor(readonly mode: ServeMode) {}

  /** Feeds back a pass's measured time. */
  record(p: Pass, ms: number): void {
    const k = costKey(p);
    const perRow = ms / p.jobs.length;
    const old = this.#msPerRow.get(k);
    this.#msPerRow.set(k, old === undefined ? perRow : (1 - ALPHA) * old + ALPHA * perRow);
  }

  /** Estimated ms of a set of passes, or undefined when one of them has no estimate yet. */
  estimate(ps: Pass[]): number | undefined {
    let total = 0;
    for (const p of ps) {
      const r = this.#msPerRow.get(costKey(p));
      if (r === undefined) return undefined;
      total += r * p.jobs.length;
    }
    return total;
  }

  plan(jobs: Job[]): Pass[] {
    if (this.mode === 'eks') return passes(jobs, () => true);
    if (this.mode === 'fused') return passes(jobs, () => false);
    const eks = passes(jobs, () => true);
    const fused = passes(jobs, () => false);
    if (!eks.some((p) => p.path === 'eks')) return fused; // nothing could run through EKS
    // One department only: its fused expert computes the same function with fewer FLOPs (no
    // low-rank paths), so there is nothing to measure.
    const both = jobs.filter((j) => j.version.eks && j.version.plain);
    if (both.every((j) => j.version === both[0]!.version)) {
      this.choices.fused++;
      return fused;
    }
    const te = this.estimate(eks);
    const tf = this.estimate(fused);
    let useEks: boolean;
    if (te === undefined) useEks = true;
    else if (tf === undefined) useEks = false;
    else {
      const shape = `b${bucket(jobs.length)}:k${new Set(jobs.map((j) => j.version.task)).size}`;
      const n = (this.#seen.get(shape) ?? 0) + 1;
      this.#seen.set(shape, n);
      useEks = te <= tf;
      if (n % EXPLORE_EVERY === 0) useEks = !useEks;
    }
    this.choices[useEks ? 'eks' : 'fused']++;
    return useEks ? eks : fused;
  }
}
