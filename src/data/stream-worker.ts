// A stream worker (stream.ts): one of a pool of threads that fill requested batches from packs and
// in-memory rows together. Every worker gets every request and takes its rows one at a time from
// the request's shared counter, so the rows of a batch are spread over the pool as the workers
// come free; a row's bytes depend only on (index, crop mode, flip), never on which worker made it.
// Raw rows are read with pread and copied (flipped where asked); JPEG rows are decoded, cropped
// (crop.ts), resized to the delivered size and flipped by jpeg-crop.ts (the lorkd_jpeg addon, or
// sharp and resample.ts without it). The worker that finishes the last row marks the batch done; a
// failure is written into the request as one line. It never loads libtorch, and imports the pack's
// reader and codec only (src/pack/index.js would load libtorch through the pack sources).
import { workerData, parentPort } from 'node:worker_threads';
import { openPack, type Pack } from '../pack/reader.js';
import { decodeRaw } from '../pack/codec.js';
import { cropBox } from './crop.js';
import { copyRow, taskOfIndex } from './gather.js';
import { jpegAddon, nativeJpegCrop, sharpJpegCrop } from './jpeg-crop.js';
import { CTRL, type StreamData, type StreamRequest } from './stream.js';

const src = workerData as StreamData;
const packs = new Map<string, Pack>();
const packOf = (dir: string): Pack => {
  let p = packs.get(dir);
  if (!p) packs.set(dir, (p = openPack(dir)));
  return p;
};
const addon = jpegAddon();
/** Rows in flight per worker: one with the synchronous addon; a few for sharp, to keep libuv's pool busy. */
const LANES = addon ? 1 : 4;

/** Bytes a row is read into when it is used up before the next is read (raw rows; JPEG through the addon): no garbage per row. */
let scratch = new Uint8Array(1 << 16);

/** Row b of the request into `dst` at `at`. */
function row(req: StreamRequest, b: number, dst: Uint8Array, at: number): void | Promise<void> {
  const i = req.indices[b]!;
  const t = taskOfIndex(src.taskStart, i);
  const r = i - src.taskStart[t]!;
  const [h, w] = [src.heights[t]!, src.widths[t]!];
  const flip = req.flips[b] !== 0;
  const ref = src.packs[t];
  if (!ref) return copyRow(src.sources[t]!, r * 3 * h * w, dst, at, h, w, flip);
  const pack = packOf(ref.dir);
  const rec = pack.record(ref.task, ref.split, ref.rows ? ref.rows[r]! : r);
  const sync = ref.storage === 'raw' || addon !== null;
  if (sync && scratch.length < rec.length) scratch = new Uint8Array(2 * rec.length);
  const bytes = pack.readBytes(rec, sync ? scratch : undefined);
  const name = `${pack.shardPath(rec.shard)} (image at ${rec.offset})`;
  if (ref.storage === 'raw') return copyRow(decodeRaw(bytes, rec.height, rec.width, name).data, 0, dst, at, h, w, flip);
  const box = cropBox(req.crop, i, rec.width, rec.height);
  const corrupt = (e: unknown): Error => new Error(`${name}: corrupt JPEG (${(e as Error).message.split('\n')[0]})`);
  if (addon) {
    try {
      return nativeJpegCrop(addon, bytes, box, ref.out, flip, dst, at);
    } catch (e) {
      throw corrupt(e);
    }
  }
  return sharpJpegCrop(bytes, box, ref.out, flip, dst, at).catch((e: unknown) => {
    throw corrupt(e);
  });
}

/** Byte offset of each row of the request in the batch (rows at their tasks' delivered sizes). */
function offsets(req: StreamRequest): number[] {
  const at: number[] = [];
  let d = 0;
  for (let b = 0; b < req.indices.length; b++) {
    at.push(d);
    const t = taskOfIndex(src.taskStart, req.indices[b]!);
    d += 3 * src.heights[t]! * src.widths[t]!;
  }
  return at;
}

/** Fails the request with one line (the first failure wins). */
function fail(req: StreamRequest, e: unknown): void {
  const state = new Int32Array(req.state);
  if (Atomics.compareExchange(state, CTRL.lock, 0, 1) !== 0) return;
  const msg = new TextEncoder().encode((e as Error).message.split('\n')[0]!);
  const dst = new Uint8Array(req.state, CTRL.bytes);
  const n = Math.min(msg.length, dst.length);
  dst.set(msg.subarray(0, n));
  Atomics.store(state, CTRL.length, n);
  Atomics.store(state, CTRL.state, 2);
  Atomics.notify(state, CTRL.state);
}

/** This worker's share of a request: rows taken from the shared counter until none is left. */
async function fill(req: StreamRequest): Promise<void> {
  const state = new Int32Array(req.state);
  const dst = new Uint8Array(req.data);
  const n = req.indices.length;
  const at = offsets(req);
  const lane = async (): Promise<void> => {
    for (;;) {
      if (Atomics.load(state, CTRL.state) === 2) return;
      const b = Atomics.add(state, CTRL.next, 1);
      if (b >= n) return;
      try {
        await row(req, b, dst, at[b]!);
      } catch (e) {
        fail(req, e);
        return;
      }
      if (Atomics.add(state, CTRL.done, 1) + 1 === n) {
        Atomics.store(state, CTRL.state, 1);
        Atomics.notify(state, CTRL.state);
      }
    }
  };
  await Promise.all(Array.from({ length: LANES }, lane));
}

// Requests are served in order: a worker starts on the next batch's rows when none of this one's is left.
let queue = Promise.resolve();
parentPort?.on('message', (req: StreamRequest) => {
  // A failure outside a row (it should not happen) still ends this request, and the queue goes on.
  queue = queue.then(() => fill(req)).catch((e: unknown) => fail(req, e));
});
