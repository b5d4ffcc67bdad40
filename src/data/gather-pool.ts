// The main-thread side of the prefetch worker (gather-worker.ts): one worker, its pending
// requests, and keeping the process alive exactly while replies are due.
import { Worker } from 'node:worker_threads';
import type { GatherSource } from './gather.js';
import type { GatherReply, GatherRequest } from './gather-worker.js';

export class GatherChannel {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();
  #nextId = 0;
  #closed = false;

  /** Starts a worker over `src`; task buffers not already shared are copied into SharedArrayBuffers. */
  constructor(src: GatherSource) {
    const sources = src.sources.map((b) => {
      if (b.buffer instanceof SharedArrayBuffer) return b;
      const v = new Uint8Array(new SharedArrayBuffer(b.length));
      v.set(b);
      return v;
    });
    const data: GatherSource = { sources, taskStart: src.taskStart.slice(), height: src.height, width: src.width, heights: src.heights?.slice(), widths: src.widths?.slice() };
    const w = new Worker(new URL('./gather-worker.js', import.meta.url), { workerData: data });
    w.unref();
    w.on('message', (m: GatherReply) => {
      const r = this.#pending.get(m.id);
      if (!r) return;
      this.#pending.delete(m.id);
      if (this.#pending.size === 0 && !this.#closed) w.unref();
      if ('error' in m) r.reject(new Error(`data loader worker: ${m.error}`));
      else r.resolve(m.images);
    });
    w.on('error', (e) => this.#failAll(e));
    w.on('exit', (code) => this.#failAll(new Error(`data loader worker exited (code ${code})`)));
    this.#worker = w;
  }

  /** False once the worker has failed, exited or been closed. */
  get alive(): boolean {
    return !this.#closed;
  }

  /** The gathered (and flipped) uint8 images of one batch. */
  request(indices: Int32Array, flips: Uint8Array): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new Error('data loader worker is closed'));
    const id = this.#nextId++;
    return new Promise<Uint8Array>((resolve, reject) => {
      if (this.#pending.size === 0) this.#worker.ref(); // keep the process alive while replies are due
      this.#pending.set(id, { resolve, reject });
      const msg: GatherRequest = { id, indices: indices.slice(), flips: flips.slice() };
      this.#worker.postMessage(msg);
    });
  }

  /** Stops the worker; pending requests are rejected. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#failAll(new Error('data loader worker closed'));
    this.#worker.ref(); // an unref'd worker would not keep the process alive until it has exited
    await this.#worker.terminate();
  }

  #failAll(e: Error): void {
    this.#closed = true;
    for (const r of this.#pending.values()) r.reject(e);
    this.#pending.clear();
  }
}
