// Micro-batching across departments: requests that arrive within maxWaitMs of the oldest waiting
// one (up to maxBatch) run together; the planner splits them into forward passes. The passes run
// in the forward worker (forward-host.ts), one batch at a time, so the event loop serves I/O while
// a batch runs: requests keep arriving (and are decoded) and gather into the next batch, which
// starts as soon as this one is answered. The queue is bounded: submit() refuses past it.
import { performance } from 'node:perf_hooks';
import { TorchError, UserError } from '../tensor/errors.js';
import type { ForwardHost, PassResult } from './forward-host.js';
import { OrtExpert } from './ort-expert.js';
import type { Precision } from '../tensor/index.js';
import type { ServeMetrics } from './metrics.js';
import type { Job, Pass, Planner } from './planner.js';

export interface BatcherOptions {
  /** Autocast precision of the forward passes (default fp32; the models' device is where they were put). */
  precision?: Precision;
  maxBatch: number;
  maxWaitMs: number;
  /** Most requests waiting for a forward pass. */
  maxQueue: number;
}

export class Batcher {
  readonly #queue: Job[] = [];
  #timer: NodeJS.Timeout | null = null;
  #pending = false;
  #running = false;
  #flushing = false;
  #idle: (() => void)[] = [];
  /** Running mean of a batch's duration (ms), for Retry-After. */
  #batchMs = 0;

  constructor(
    readonly o: BatcherOptions,
    readonly planner: Planner,
    readonly metrics: ServeMetrics,
    readonly forward: ForwardHost,
  ) {}

  get depth(): number {
    return this.#queue.length;
  }

  /** Queues a job; false (and nothing queued) when the queue is full. */
  submit(job: Job): boolean {
    if (this.#queue.length >= this.o.maxQueue) return false;
    this.#queue.push(job);
    this.metrics.queueDepth.set({}, this.#queue.length);
    this.#schedule();
    return true;
  }

  /** Seconds a refused client should wait: the time to work off the queue, at least 1. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(((this.#queue.length / this.o.maxBatch + 1) * this.#batchMs) / 1000));
  }

  /** Runs everything queued without waiting for maxWaitMs; resolves when the queue is empty. */
  flush(): Promise<void> {
    this.#flushing = true;
    this.#schedule();
    return new Promise((resolve) => {
      if (!this.#queue.length && !this.#running && !this.#pending) resolve();
      else this.#idle.push(resolve);
    });
  }

  #schedule(): void {
    if (this.#running || this.#pending || !this.#queue.length) return;
    const wait = this.#flushing || this.#queue.length >= this.o.maxBatch ? 0 : this.o.maxWaitMs - (performance.now() - this.#queue[0]!.arrived);
    if (wait > 0) {
      this.#timer ??= setTimeout(() => {
        this.#timer = null;
        this.#schedule();
      }, Math.ceil(wait));
      return;
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#pending = true;
    setImmediate(() => {
      this.#pending = false;
      void this.#run();
    });
  }

  // lorkd's passes run in the forward worker; an ONNX expert's in onnxruntime's own threads.
  async #pass(p: Pass): Promise<PassResult> {
    const inputs = p.jobs.map((j) => j.input);
    const precision = this.o.precision ?? 'fp32';
    if (p.path === 'eks') return this.forward.run(p.shared.model, inputs, p.jobs.map((j) => j.version.eks!.index), precision);
    if (!(p.model instanceof OrtExpert)) return this.forward.run(p.model, inputs, undefined, precision);
    const t0 = performance.now();
    const probs = await p.model.probs(inputs);
    return { probs, ms: performance.now() - t0 };
  }

  async #run(): Promise<void> {
    this.#running = true;
    const jobs = this.#queue.splice(0, this.o.maxBatch);
    this.metrics.queueDepth.set({}, this.#queue.length);
    const t0 = performance.now();
    try {
      this.metrics.batchSize.observe(jobs.length);
      let plan: Pass[] = [];
      try {
        plan = this.planner.plan(jobs);
      } catch (e) {
        for (const j of jobs) j.reject(e as Error);
      }
      for (const p of plan) {
        let probs: Float32Array[];
        let ms: number;
        try {
          ({ probs, ms } = await this.#pass(p));
        } catch (e) {
          // A libtorch or input error fails this pass's requests only; the service goes on.
          const err = e instanceof UserError || e instanceof TorchError ? e : new Error(String((e as Error)?.message ?? e));
          for (const j of p.jobs) j.reject(err);
          continue;
        }
        this.planner.record(p, ms);
        this.metrics.forwards.inc({ path: p.path });
        this.metrics.forwardSeconds.inc({ path: p.path }, ms / 1000);
        p.jobs.forEach((j, i) => j.resolve({ probs: probs[i]!, path: p.path, batch: jobs.length }));
      }
    } finally {
      for (const j of jobs) j.input.dispose();
      const ms = performance.now() - t0;
      this.#batchMs = this.#batchMs === 0 ? ms : 0.8 * this.#batchMs + 0.2 * ms;
      this.#running = false;
    }
    if (this.#queue.length) this.#schedule();
    else for (const r of this.#idle.splice(0)) r();
  }
}
