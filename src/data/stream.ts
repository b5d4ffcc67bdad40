// Streaming a split's rows from packs (docs/PACK.md): the main-thread side of a pool of stream
// workers (stream-worker.ts), one per core by default. A request (a batch's suite indices, flips and
// crop mode) goes to every worker; they share out its rows through a counter in shared memory, read
// each packed row with pread, decode it (raw planes, or a JPEG decoded, cropped, resized and flipped
// by jpeg-crop.ts) and write it into the batch's SharedArrayBuffer. The caller takes the batch
// synchronously (Atomics.wait), so the loader's synchronous epoch() streams too, with batches
// requested ahead (prefetched) while it trains. A row's bytes depend only on its index, crop and
// flip, so the batches are the same whatever the number of workers. Memory holds the batches in
// flight, whatever the pack's size.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { UserError } from '../tensor/errors.js';
import { openPack } from '../pack/reader.js';
import type { Split } from './dataset.js';
import type { CropMode } from './crop.js';
import type { GatherSource } from './gather.js';
import { sizeOf, taskOfIndex } from './gather.js';

/** Where a packed task's rows are, and the side of the rows delivered. */
export interface PackRef {
  /** The pack's folder (absolute). */
  dir: string;
  /** Task number in the pack's manifest. */
  task: number;
  split: Split;
  storage: 'raw' | 'jpeg';
  /** Rows are delivered out x out (raw: the stored size; jpeg: cropped and resized to it). */
  out: number;
  /** A subset of the split (few-shot training): row r of the task is row rows[r] of the pack; absent: all rows. */
  rows?: Int32Array;
}

/** A packed task's identity for cache keys: its pack's shard checksums, task, split and delivered size. */
export function packIdentity(ref: PackRef): string {
  const m = openPack(ref.dir).manifest;
  return JSON.stringify({ shards: m.shards.map((s) => s.sha256), task: ref.task, split: ref.split, storage: ref.storage, out: ref.out, ...(ref.rows ? { rows: Array.from(ref.rows) } : {}) });
}

/** What the stream worker is started with. */
export interface StreamData {
  /** Per task: its pack, or null for an in-memory task (then `sources[t]` holds its rows). */
  packs: (PackRef | null)[];
  sources: Uint8Array[];
  taskStart: number[];
  heights: number[];
  widths: number[];
}

export interface StreamRequest {
  indices: Int32Array;
  flips: Uint8Array;
  crop: CropMode;
  /** The batch's bytes, written by the workers. */
  data: SharedArrayBuffer;
  /** A request's control block (CTRL), then the error message (UTF-8, at most 1 KiB). A fresh one per request. */
  state: SharedArrayBuffer;
}

/** Int32 slots of a request's control block, and the byte where the error message starts. */
export const CTRL = {
  /** 0 pending, 1 done, 2 failed. */
  state: 0,
  /** Bytes of the error message. */
  length: 1,
  /** The next row a worker takes. */
  next: 2,
  /** Rows written. */
  done: 3,
  /** Taken by the worker that writes the error. */
  lock: 4,
  bytes: 32,
} as const;

/** Stream workers when not told: LORKD_STREAM_THREADS, else one per core. */
export function defaultStreamThreads(): number {
  const env = Number(process.env.LORKD_STREAM_THREADS);
  return Number.isInteger(env) && env >= 1 ? env : os.availableParallelism();
}

/** A batch requested from the worker, taken with RowStream.take. */
export interface Pending {
  data: Uint8Array;
  state: Int32Array;
  /** The shared buffers, returned to the pool when the batch is taken. */
  slot: Slot;
}

interface Slot {
  data: SharedArrayBuffer;
}

/** How long a take waits for the worker before it gives up (a stuck or dead worker). */
const TAKE_LIMIT_MS = 10 * 60 * 1000;

export class RowStream {
  readonly #data: StreamData;
  readonly #threads: number;
  #workers: Worker[] = [];
  /**
   * Shared buffers of taken batches, reused by later requests: a SharedArrayBuffer's memory is only
   * freed when both threads have collected it, which V8 does too late to keep memory flat.
   */
  readonly #free: Slot[] = [];

  /** A stream over `src` (a split with packed tasks), read by `threads` workers; in-memory tasks' rows are copied into shared memory once. */
  constructor(src: GatherSource & { packs: (PackRef | null)[] }, threads = defaultStreamThreads()) {
    if (!(Number.isInteger(threads) && threads >= 1)) throw new UserError(`data stream: threads must be a positive integer, got ${threads}`);
    this.#threads = threads;
    const sources = src.sources.map((b, t) => {
      if (src.packs[t] || b.buffer instanceof SharedArrayBuffer) return b;
      const v = new Uint8Array(new SharedArrayBuffer(b.length));
      v.set(b);
      return v;
    });
    const sizes = src.taskStart.map((_, t) => sizeOf(src, t));
    this.#data = { packs: src.packs, sources, taskStart: src.taskStart.slice(), heights: sizes.map((s) => s[0]), widths: sizes.map((s) => s[1]) };
  }

  #start(): Worker[] {
    if (this.#workers.length) return this.#workers;
    this.#workers = Array.from({ length: this.#threads }, () => {
      const w = new Worker(new URL('./stream-worker.js', import.meta.url), { workerData: this.#data });
      w.unref(); // the caller waits synchronously; an idle worker never keeps the process alive
      return w;
    });
    return this.#workers;
  }

  /** Bytes of a batch of `indices` (each row 3 x h x w at its task's delivered size). */
  batchBytes(indices: ArrayLike<number>): number {
    let n = 0;
    for (let b = 0; b < indices.length; b++) {
      const t = taskOfIndex(this.#data.taskStart, indices[b]!);
      n += 3 * this.#data.heights[t]! * this.#data.widths[t]!;
    }
    return n;
  }

  /** Asks the workers for a batch; it is read, decoded and written while the caller works. */
  request(indices: Int32Array, flips: Uint8Array, crop: CropMode): Pending {
    const need = this.batchBytes(indices);
    const k = this.#free.findIndex((s) => s.data.byteLength >= need && s.data.byteLength <= 2 * need + 4096);
    const slot = k >= 0 ? this.#free.splice(k, 1)[0]! : { data: new SharedArrayBuffer(need) };
    // A fresh control block: a worker late to an earlier request that used this slot's data finds
    // that request's counter exhausted, never this one's.
    const ctrl = new SharedArrayBuffer(CTRL.bytes + 1024);
    const state = new Int32Array(ctrl);
    if (indices.length === 0) Atomics.store(state, CTRL.state, 1);
    const msg: StreamRequest = { indices: indices.slice(), flips: flips.slice(), crop, data: slot.data, state: ctrl };
    for (const w of this.#start()) w.postMessage(msg);
    return { data: new Uint8Array(slot.data, 0, need), state, slot };
  }

  /**
   * The bytes of a requested batch, waiting for the worker when it is not done yet; copied into
   * `out` when it has the batch's length (a buffer the caller reuses), else into a new array.
   */
  take(p: Pending, out?: Uint8Array): Uint8Array {
    const t0 = Date.now();
    while (Atomics.load(p.state, CTRL.state) === 0) {
      if (Date.now() - t0 > TAKE_LIMIT_MS) throw new UserError(`data stream: no batch from the workers within ${TAKE_LIMIT_MS / 1000} s`);
      Atomics.wait(p.state, CTRL.state, 0, 1000);
    }
    if (Atomics.load(p.state, CTRL.state) === 2) {
      // The slot is dropped: other workers may still be writing rows of this batch into it.
      const n = Atomics.load(p.state, CTRL.length);
      throw new UserError(new TextDecoder().decode(new Uint8Array(p.state.buffer, CTRL.bytes, n).slice()));
    }
    const bytes = out && out.length === p.data.length ? out : new Uint8Array(p.data.length);
    bytes.set(p.data);
    if (this.#free.length < 16) this.#free.push(p.slot);
    return bytes;
  }

  /** A batch, synchronously (request and take). */
  fetch(indices: Int32Array, flips: Uint8Array, crop: CropMode): Uint8Array {
    return this.take(this.request(indices, flips, crop));
  }

  /** Stops the workers (a later request starts new ones). */
  async close(): Promise<void> {
    const ws = this.#workers;
    this.#workers = [];
    await Promise.all(ws.map((w) => w.terminate()));
  }
}
