// The service behind the HTTP layer: departments, the micro-batcher, metrics, hot changes and
// draining. A request takes a reference on its department's current version when it arrives, so
// it finishes on that version even if the department is replaced or removed meanwhile.
import { performance } from 'node:perf_hooks';
import { DTYPE_BYTES, keep, tensor, tidy } from '../tensor/index.js';
import { claimedPixels } from '../data/image-decode.js';
import { limit, limitHint } from '../io/limits.js';
import type { Module } from '../nn/module.js';
import { UserError } from '../tensor/errors.js';
import { Batcher, type BatcherOptions } from './batcher.js';
import { DecodePool } from './decode-pool.js';
import { ForwardHost } from './forward-host.js';
import { OrtExpert } from './ort-expert.js';
import { PixelBudget } from './pixel-budget.js';
import { type DepartmentSpec, type DepartmentVersion, Departments, checkTaskName, disposeSpec } from './departments.js';
import { HttpError } from './http-error.js';
import { type PreprocessingDefaults, type ServeMode, departmentFromFile } from './load.js';
import { ServeMetrics } from './metrics.js';
import { type JobResult, type Path, Planner } from './planner.js';

export interface ServiceOptions extends BatcherOptions {
  mode: ServeMode;
  /** Preprocessing for decomposition checkpoints that record none (hot adds). */
  defaults?: PreprocessingDefaults;
  /** Most pixels (as image headers claim them) being decoded at once (default: LORKD_MAX_IMAGE_PIXELS). */
  maxPixels?: number;
  /** Decode worker threads (default: the cores, 2 to 4). */
  decodeThreads?: number;
  /** Where every department's model runs (default cpu); inputs are decoded on the host and copied over per batch. */
  device?: string;
}

/** The answer to one prediction request. */
export interface Answer {
  task: string;
  /** The department's version that answered (it changes with every hot add/replace). */
  version: number;
  /** The most probable class (the first on ties). */
  class: string;
  classNames: readonly string[];
  /** Probability of every class, by class name. */
  probs: Record<string, number>;
  /** eks: one pass of the decomposition model over mixed departments; plain: the department's own model. */
  servedBy: Path;
  /** Requests in the micro-batch it ran in. */
  batch: number;
}

export class Service {
  readonly departments = new Departments();
  readonly metrics: ServeMetrics;
  readonly planner: Planner;
  readonly batcher: Batcher;
  readonly decoder: DecodePool;
  /** Where the forward passes run: a worker thread, off the event loop. */
  readonly forward = new ForwardHost();
  readonly pixels: PixelBudget;
  #inFlight = 0;
  #draining = false;
  #idle: (() => void)[] = [];

  constructor(
    readonly o: ServiceOptions,
    specs: DepartmentSpec[],
  ) {
    for (const [k, v] of [['maxBatch', o.maxBatch], ['maxQueue', o.maxQueue]] as const) {
      if (!(Number.isInteger(v) && v >= 1)) throw new UserError(`${k} must be a positive integer, got ${v}`);
    }
    if (!(Number.isFinite(o.maxWaitMs) && o.maxWaitMs >= 0)) throw new UserError(`maxWaitMs must be >= 0, got ${o.maxWaitMs}`);
    this.metrics = new ServeMetrics(o.maxBatch);
    this.planner = new Planner(o.mode);
    this.batcher = new Batcher(o, this.planner, this.metrics, this.forward);
    this.pixels = new PixelBudget(o.maxPixels ?? limit('imagePixels'), (n) => this.metrics.pixelsInFlight.set({}, n));
    this.decoder = new DecodePool(o.decodeThreads);
    let i = 0;
    try {
      for (; i < specs.length; i++) this.#put(specs[i]!);
    } catch (e) {
      specs.slice(i + 1).forEach(disposeSpec);
      this.departments.clear();
      throw e;
    }
  }

  get draining(): boolean {
    return this.#draining;
  }
  get inFlight(): number {
    return this.#inFlight;
  }

  #put(spec: DepartmentSpec): { current: DepartmentVersion; replaced: DepartmentVersion | null } {
    if (spec.preprocessing.channels !== 3) {
      disposeSpec(spec);
      throw new UserError(`${spec.source}: ${spec.preprocessing.channels}-channel models are not supported; lorkd serves 3-channel experts`);
    }
    // Every model of the service on its device (a shared decomposition moves once; .to is a no-op after).
    if (spec.plain instanceof OrtExpert) {
      if ((this.o.device ?? 'cpu') !== 'cpu') {
        disposeSpec(spec);
        throw new UserError(`${spec.source}: ONNX experts are served on the CPU only (onnxruntime-node's CPU engine); drop --device or serve the expert's .safetensors file`);
      }
    } else spec.plain?.to(this.o.device ?? 'cpu');
    spec.eks?.shared.model.to(this.o.device ?? 'cpu');
    const r = this.departments.put(spec);
    this.#countModelBytes();
    return r;
  }

  /** The lorkd_model_bytes gauge: state-dict bytes of every model the current departments hold. */
  #countModelBytes(): void {
    const models = new Set<Module>();
    let bytes = 0;
    for (const d of this.departments.list()) {
      if (d.eks) models.add(d.eks.shared.model);
      if (d.plain instanceof OrtExpert) bytes += d.plain.bytes;
      else if (d.plain) models.add(d.plain);
    }
    bytes += tidy(() => [...models].reduce((a, m) => a + [...m.stateDict().values()].reduce((b, t) => b + t.numel * DTYPE_BYTES[t.dtype], 0), 0));
    this.metrics.modelBytes.set({}, bytes);
  }

  /**
   * Answers one prediction: `read` gives the body bytes (it may throw an HttpError, e.g. 413).
   * Every failure is an HttpError (4xx for the request's faults, 503 when overloaded or
   * draining, 500 for a failed forward); the service itself is never left in a bad state.
   */
  async predict(task: string | undefined, read: () => Promise<{ bytes: Uint8Array; name: string }>): Promise<Answer> {
    const t0 = performance.now();
    let label = 'unknown';
    let status = 200;
    this.#inFlight++;
    this.metrics.inFlight.set({}, this.#inFlight);
    let version: DepartmentVersion | null = null;
    try {
      if (this.#draining) throw new HttpError(503, 'shutting down', { 'Retry-After': '1', Connection: 'close' });
      if (!task) throw new HttpError(400, 'missing ?task=NAME');
      const v = this.departments.get(task);
      if (!v) throw new HttpError(404, `unknown task "${task}"; tasks: ${this.departments.list().map((d) => d.task).join(', ')}`);
      label = task;
      v.acquire();
      version = v;
      this.#checkQueue();
      let body: { bytes: Uint8Array; name: string };
      try {
        body = await read();
      } catch (e) {
        // A body the client broke off (or the framework could not read) is the request's fault.
        throw e instanceof HttpError ? e : new HttpError(400, `cannot read the request body (${(e as Error)?.message ?? String(e)})`);
      }
      const { bytes, name } = body;
      if (bytes.length === 0) throw new HttpError(400, 'empty body: send the image bytes');
      // Decoding runs in a worker (decode-pool.ts), admitted by the pixels the header claims.
      const pixels = claimedPixels(bytes, name);
      // A claim over the pixel limit would only be refused by the worker: it takes no budget.
      if (pixels > limit('imagePixels')) throw new HttpError(400, `${name}: its header claims ${pixels} pixels, over the limit (${limitHint('imagePixels')})`);
      const release = this.pixels.admit(pixels);
      let data: Float32Array;
      try {
        data = await this.decoder.input(bytes, name, v.preprocessing);
      } finally {
        release();
      }
      const S = v.preprocessing.inputSize;
      const input = keep(tensor(data, [1, 3, S, S]));
      const result = await new Promise<JobResult>((resolve, reject) => {
        const ok = this.batcher.submit({ version: v, input, arrived: performance.now(), resolve, reject });
        if (!ok) {
          input.dispose();
          reject(this.#overloaded());
        }
      });
      return this.#answer(v, result);
    } catch (e) {
      const err = e instanceof HttpError ? e : new HttpError(500, `prediction failed: ${(e as Error)?.message?.split('\n')[0] ?? String(e)}`);
      status = err.status;
      throw err;
    } finally {
      version?.release();
      this.metrics.requests.inc({ task: label, status: String(status) });
      this.metrics.latency.observe((performance.now() - t0) / 1000);
      this.#inFlight--;
      this.metrics.inFlight.set({}, this.#inFlight);
      if (this.#inFlight === 0) for (const r of this.#idle.splice(0)) r();
    }
  }

  #overloaded(): HttpError {
    return new HttpError(503, `overloaded: ${this.batcher.depth} requests queued (limit ${this.o.maxQueue})`, { 'Retry-After': String(this.batcher.retryAfterSeconds()) });
  }

  #checkQueue(): void {
    if (this.batcher.depth >= this.o.maxQueue) throw this.#overloaded();
  }

  #answer(v: DepartmentVersion, r: JobResult): Answer {
    let best = 0;
    for (let k = 1; k < r.probs.length; k++) if (r.probs[k]! > r.probs[best]!) best = k;
    return {
      task: v.task,
      version: v.version,
      class: v.classNames[best]!,
      classNames: v.classNames,
      probs: Object.fromEntries(v.classNames.map((c, k) => [c, r.probs[k]!])),
      servedBy: r.path,
      batch: r.batch,
    };
  }

  /** GET /v1/tasks. */
  tasks(): Record<string, unknown>[] {
    return this.departments.list().map((d) => d.describe());
  }

  /**
   * Hot add or replace: department `name` from `file` (an expert file, or task `task` of a
   * decomposition checkpoint). A new task of a grown decomposition joins the running model's EKS
   * pass (serve/join.ts). Requests already running finish on the version they started with.
   */
  put(name: string, file: string, task?: string): { task: string; version: number; replaced: number | null; source: string } {
    if (this.#draining) throw new HttpError(503, 'shutting down');
    checkTaskName(name);
    const running = [...new Set(this.departments.list().flatMap((d) => (d.eks ? [d.eks.shared] : [])))];
    const spec = departmentFromFile(file, name, this.o.mode, task, this.o.defaults, running);
    const { current, replaced } = this.#put(spec);
    return { task: name, version: current.version, replaced: replaced?.version ?? null, source: current.source };
  }

  /** Hot remove; requests already running on it finish. */
  remove(name: string): { task: string; version: number } | null {
    const v = this.departments.remove(name);
    this.#countModelBytes();
    return v ? { task: name, version: v.version } : null;
  }

  /** Stops taking requests, answers every one already taken, then frees the models. */
  async drain(): Promise<void> {
    this.#draining = true;
    await this.batcher.flush();
    if (this.#inFlight > 0) await new Promise<void>((r) => this.#idle.push(r));
    await this.batcher.flush();
    this.departments.clear();
    await Promise.all([this.forward.close(), this.decoder.close()]);
  }
}
