// The service's side of the forward worker (forward-worker.ts): forward passes run there, off the
// event loop, so HTTP parsing, image decoding (the decode pool) and answers go on while a pass
// runs. Why a worker thread and not a native async call: a forward is composed in TypeScript, one
// native call per op (the binding stays thin, DESIGN.md), so no single native call holds the whole
// pass that libuv's pool could run; the worker runs that same TypeScript forward on its own thread.
//
// The worker holds a twin of every served model (mirror.ts), made on its first pass from the
// model's own storage (no copy) and dropped when the model is freed or changed (forgetPlan in
// forward.ts tells every host). A request's inputs are handed over the same way. Everything the
// service decides (versions, planner, batches) stays on the event loop; passes are posted in
// order and the worker runs them one at a time. If the worker dies, its passes fail with a 500
// and the next pass starts a new one.
import { Worker } from 'node:worker_threads';
import type { Module } from '../nn/module.js';
import { type Precision, type Tensor, handOff, dropHandedOff, getNumThreads } from '../tensor/index.js';
import { TorchError, UserError } from '../tensor/errors.js';
import { type MirrorMessage, mirrorOf, dropState } from './mirror.js';

export type ToWorker =
  | ({ type: 'mirror'; key: number } & MirrorMessage)
  | { type: 'forget'; key: number }
  | { type: 'run'; id: number; key: number; inputs: number[]; tasks?: number[]; precision: Precision }
  | { type: 'close' };

export type FromWorker =
  | { type: 'done'; id: number; probs: Float32Array[]; ms: number }
  | { type: 'failed'; id: number; kind: 'user' | 'torch' | 'other'; message: string }
  | { type: 'closed' };

/** What a pass gives back: probabilities per input (in input order) and the worker's compute time. */
export interface PassResult {
  probs: Float32Array[];
  ms: number;
}

interface Pending {
  resolve(r: PassResult): void;
  reject(e: Error): void;
  /** Hand-offs the worker may not have taken yet. */
  ids: number[];
}

// Every host alive, so that a model freed or changed anywhere drops its twins (forgetPlan).
const hosts = new Set<ForwardHost>();
/** Tells every forward worker that `model` is freed or changed: its twin goes. */
export function forgetTwins(model: Module): void {
  for (const h of hosts) h.forget(model);
}

let nextKey = 1;
const keys = new WeakMap<Module, number>();
const keyOf = (m: Module): number => keys.get(m) ?? (keys.set(m, nextKey++), nextKey - 1);

export class ForwardHost {
  /**
   * A gate every pass waits at in the worker, for tests: [0] = 1 holds passes there, [1] counts
   * passes that reached it. `hold()` and `release()` set it.
   */
  readonly #gate = new Int32Array(new SharedArrayBuffer(8));
  #worker: Worker | null = null;
  /** Models with a twin in the current worker. */
  #twins = new Set<number>();
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;

  #start(): Worker {
    // The worker's libtorch threads: this thread's count (OpenMP's setting is per thread).
    const w = new Worker(new URL('./forward-worker.js', import.meta.url), { workerData: { threads: getNumThreads(), gate: this.#gate } });
    w.unref(); // only passes in flight keep the process alive
    w.on('message', (m: FromWorker) => this.#reply(m));
    w.on('error', (e) => this.#lost(w, `forward worker failed: ${e.message.split('\n')[0]}`));
    w.on('exit', (code) => this.#lost(w, `forward worker exited (${code})`));
    this.#worker = w;
    this.#twins = new Set();
    hosts.add(this);
    return w;
  }

  #reply(m: FromWorker): void {
    if (m.type === 'closed') return;
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#pending.delete(m.id);
    if (this.#pending.size === 0) this.#worker?.unref();
    if (m.type === 'done') p.resolve({ probs: m.probs, ms: m.ms });
    else p.reject(m.kind === 'user' ? new UserError(m.message) : m.kind === 'torch' ? new TorchError(m.message) : new Error(m.message));
  }

  // The worker is gone: its passes fail, what it did not take is freed, the next pass starts anew.
  #lost(w: Worker, why: string): void {
    if (this.#worker !== w) return;
    this.#worker = null;
    this.#twins.clear();
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      p.ids.forEach(dropHandedOff);
      p.reject(new Error(why));
    }
  }

  /**
   * One pass in the worker: `model` (a decomposition model with `tasks`, the sorted task index of
   * every input, or a plain model without) over single-image inputs, which stay the caller's to free.
   */
  async run(model: Module, inputs: Tensor[], tasks: readonly number[] | undefined, precision: Precision): Promise<PassResult> {
    if (this.#closed) throw new Error('serve: the forward worker is closed');
    const w = this.#worker ?? this.#start();
    const key = keyOf(model);
    // Hand-offs to free if the worker goes away before taking them: a new twin's tensors, the inputs.
    const ids: number[] = [];
    if (!this.#twins.has(key)) {
      const mirror = mirrorOf(model);
      try {
        w.postMessage({ type: 'mirror', key, ...mirror } satisfies ToWorker);
      } catch (e) {
        dropState(mirror.state);
        throw e;
      }
      this.#twins.add(key);
      ids.push(...mirror.state.map(([, id]) => id));
    }
    const inputIds = inputs.map(handOff);
    ids.push(...inputIds);
    const id = this.#nextId++;
    return new Promise<PassResult>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, ids });
      if (this.#pending.size === 1) w.ref();
      w.postMessage({ type: 'run', id, key, inputs: inputIds, ...(tasks ? { tasks: [...tasks] } : {}), precision } satisfies ToWorker);
    });
  }

  /** Test hook: passes wait in the worker before they run, until release(). */
  hold(): void {
    Atomics.store(this.#gate, 0, 1);
  }

  /** Lets held passes run. */
  release(): void {
    Atomics.store(this.#gate, 0, 0);
    Atomics.notify(this.#gate, 0);
  }

  /** Passes that reached the gate so far (held or not). */
  get passesAtGate(): number {
    return Atomics.load(this.#gate, 1);
  }

  /** Drops `model`'s twin (the model was freed or changed). */
  forget(model: Module): void {
    const key = keys.get(model);
    if (key === undefined || !this.#twins.delete(key)) return;
    this.#worker?.postMessage({ type: 'forget', key } satisfies ToWorker);
  }

  /** Frees every twin and stops the worker (after the passes already posted). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    hosts.delete(this);
    const w = this.#worker;
    if (!w) return;
    w.ref();
    await new Promise<void>((resolve) => {
      w.once('exit', () => resolve());
      w.on('message', (m: FromWorker) => m.type === 'closed' && void w.terminate());
      w.postMessage({ type: 'close' } satisfies ToWorker);
    });
  }
}
