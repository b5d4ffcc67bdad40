// Decoding off the event loop: every uploaded image is decoded and made into its model input in
// a worker thread (decode-worker.ts, a piscina pool). Each worker's heap is capped
// (LORKD_DECODE_HEAP, worker_threads resourceLimits) and each decode has a deadline
// (LORKD_DECODE_SECONDS, the worker is terminated past it), so an image that would exhaust the
// heap or run for minutes costs one worker, which the pool replaces, never the service. Workers
// run niced, so the event loop (and /healthz, /metrics) keeps the CPU it needs.
import os from 'node:os';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { limit, limitHint } from '../io/limits.js';
import type { InputSpec } from '../data/image-input.js';
import { HttpError } from './http-error.js';
import type { DecodeReply, DecodeTask } from './decode-worker.js';

/** Default number of decode workers: the cores, at least 2 and at most 4. */
export const defaultDecodeThreads = (): number => Math.max(2, Math.min(4, os.availableParallelism()));

export class DecodePool {
  readonly #pool: Piscina<DecodeTask, DecodeReply>;
  readonly #seconds = limit('decodeSeconds');

  constructor(threads = defaultDecodeThreads()) {
    const heap = limit('decodeHeap');
    this.#pool = new Piscina<DecodeTask, DecodeReply>({
      filename: new URL('./decode-worker.js', import.meta.url).href,
      minThreads: 0,
      maxThreads: threads,
      idleTimeout: 10_000,
      niceIncrement: 10,
      resourceLimits: { maxOldGenerationSizeMb: Math.max(16, Math.floor(heap / 2 ** 20)), maxYoungGenerationSizeMb: 16 },
    });
  }

  /** The model input of an uploaded image (its bytes are moved to the worker); refusals are HttpErrors. */
  async input(bytes: Uint8Array, name: string, spec: InputSpec): Promise<Float32Array> {
    const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && !(bytes.buffer instanceof SharedArrayBuffer) ? bytes : bytes.slice();
    // The deadline counts the decode itself, from the moment a worker starts it (not the wait for
    // a free worker, nor a worker's start-up): the worker says so on `started`.
    const { port1, port2 } = new MessageChannel();
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    port1.once('message', () => {
      timer = setTimeout(() => abort.abort(), this.#seconds * 1000);
    });
    let r: DecodeReply;
    try {
      r = await this.#pool.run(
        { bytes: own, name, spec: { inputSize: spec.inputSize, mean: [...spec.mean], std: [...spec.std] }, started: port2 },
        { transferList: [own.buffer as ArrayBuffer, port2] as never, signal: abort.signal },
      );
    } catch (e) {
      const err = e as Error & { code?: string };
      if (err.name === 'AbortError') throw new HttpError(400, `${name}: decoding takes longer than allowed (${limitHint('decodeSeconds')})`);
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') throw new HttpError(400, `${name}: decoding needs more heap than allowed (${limitHint('decodeHeap')})`);
      throw new HttpError(500, `${name}: decode worker failed (${String(err?.message ?? err).split('\n')[0]})`);
    } finally {
      clearTimeout(timer);
      port1.close();
    }
    if (r instanceof Float32Array) return r;
    throw new HttpError(400, r.error);
  }

  /** Stops the workers (a decode in progress is abandoned). */
  close(): Promise<void> {
    return this.#pool.destroy();
  }
}
