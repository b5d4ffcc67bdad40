// Streaming a split's rows from packs (docs/PACK.md): the main-thread side of the stream worker
// (stream-worker.ts). A request (a batch's suite indices, flips and crop mode) goes to the worker,
// which reads each packed row with pread, decodes it (raw planes, or a JPEG cropped, resized and
// flipped by sharp on libuv's thread pool, every core), and writes the batch into a
// SharedArrayBuffer of its own. The caller takes it synchronously (Atomics.wait), so the loader's
// synchronous epoch() streams too, with batches requested ahead (prefetched) while it trains.
// Memory holds the batches in flight, whatever the pack's size.
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
}

/** A packed task's identity for cache keys: its pack's shard checksums, task, split and delivered size. */
export function packIdentity(ref: PackRef): string {
  const m = openPack(ref.dir).manifest;
  return JSON.stringify({ shards: m.shards.map((s) => s.sha256), task: ref.task, split: ref.split, storage: ref.storage, out: ref.out });
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
  /** The batch's bytes, written by the worker. */
  data: SharedArrayBuffer;
  /** Int32 [state (0 pending, 1 done, 2 failed), error message length], then the message (UTF-8, at most 1 KiB). */
  state: SharedArrayBuffer;
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
  state: SharedArrayBuffer;
}

/** How long a take waits for the worker before it gives up (a stuck or dead worker). */
const TAKE_LIMIT_MS = 10 * 60 * 1000;

export class RowStream {
  readonly #data: StreamData;
  #worker: Worker | null = null;
  /**
   * Shared buffers of taken batches, reused by later requests: a SharedArrayBuffer's memory is only
   * freed when both threads have collected it, which V8 does too late to keep memory flat.
   */
  readonly #free: Slot[] = [];

  /** A stream over `src` (a split with packed tasks); in-memory tasks' rows are copied into shared memory once. */
  constructor(src: GatherSource & { packs: (PackRef | null)[] }) {
    const sources = src.sources.map((b, t) => {
      if (src.packs[t] || b.buffer instanceof SharedArrayBuffer) return b;
      const v = new Uint8Array(new SharedArrayBuffer(b.length));
      v.set(b);
      return v;
    });
    const sizes = src.taskStart.map((_, t) => sizeOf(src, t));
    this.#data = { packs: src.packs, sources, taskStart: src.taskStart.slice(), heights: sizes.map((s) => s[0]), widths: sizes.map((s) => s[1]) };
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const w = new Worker(new URL('./stream-worker.js', import.meta.url), { workerData: this.#data });
    w.unref(); // the caller waits synchronously; an idle worker never keeps the process alive
    this.#worker = w;
    return w;
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

  /** Asks the worker for a batch; it is read, decoded and written while the caller works. */
  request(indices: Int32Array, flips: Uint8Array, crop: CropMode): Pending {
    const need = this.batchBytes(indices);
    const k = this.#free.findIndex((s) => s.data.byteLength >= need && s.data.byteLength <= 2 * need + 4096);
    const slot = k >= 0 ? this.#free.splice(k, 1)[0]! : { data: new SharedArrayBuffer(need), state: new SharedArrayBuffer(8 + 1024) };
    const state = new Int32Array(slot.state);
    Atomics.store(state, 0, 0);
    const msg: StreamRequest = { indices: indices.slice(), flips: flips.slice(), crop, data: slot.data, state: slot.state };
    this.#start().postMessage(msg);
    return { data: new Uint8Array(slot.data, 0, need), state, slot };
  }

  /**
   * The bytes of a requested batch, waiting for the worker when it is not done yet; copied into
   * `out` when it has the batch's length (a buffer the caller reuses), else into a new array.
   */
  take(p: Pending, out?: Uint8Array): Uint8Array {
    const t0 = Date.now();
    while (Atomics.load(p.state, 0) === 0) {
      if (Date.now() - t0 > TAKE_LIMIT_MS) throw new UserError(`data stream: no batch from the worker within ${TAKE_LIMIT_MS / 1000} s`);
      Atomics.wait(p.state, 0, 0, 1000);
    }
    if (Atomics.load(p.state, 0) === 2) {
      const n = Atomics.load(p.state, 1);
      throw new UserError(new TextDecoder().decode(new Uint8Array(p.state.buffer, 8, n).slice()));
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

  /** Stops the worker (a later request starts a new one). */
  async close(): Promise<void> {
    const w = this.#worker;
    this.#worker = null;
    if (w) await w.terminate();
  }
}
