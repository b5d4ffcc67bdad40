// The stream worker (stream.ts): fills requested batches from packs and in-memory rows. It never
// loads libtorch. Raw rows are read with pread and copied (flipped where asked); JPEG rows are
// decoded, cropped (crop.ts), resized bilinearly to the delivered size and flipped by sharp, many at
// once on libuv's thread pool. An error is written into the request as one line. It imports the
// pack's reader and codec only (src/pack/index.js would load libtorch through the pack sources).
import { workerData, parentPort } from 'node:worker_threads';
import sharp from 'sharp';
import { openPack, type Pack } from '../pack/reader.js';
import type { PackRecord } from '../pack/format.js';
import { decodeRaw, hwcToImage } from '../pack/codec.js';
import { cropBox } from './crop.js';
import { copyRow, taskOfIndex } from './gather.js';
import type { StreamData, StreamRequest } from './stream.js';

const src = workerData as StreamData;
const packs = new Map<string, Pack>();
const packOf = (dir: string): Pack => {
  let p = packs.get(dir);
  if (!p) packs.set(dir, (p = openPack(dir)));
  return p;
};

/** One JPEG row: its crop box (from the record's stored size) cut, resized to out x out, flipped. */
async function jpegRow(bytes: Uint8Array, rec: PackRecord, name: string, index: number, req: StreamRequest, flip: boolean, out: number, dst: Uint8Array, at: number): Promise<void> {
  let img;
  try {
    const box = cropBox(req.crop, index, rec.width, rec.height);
    let p = sharp(bytes, { failOn: 'truncated' }).extract(box).resize(out, out, { fit: 'fill', kernel: 'linear' });
    if (flip) p = p.flop();
    const { data, info } = await p.raw().toBuffer({ resolveWithObject: true });
    img = hwcToImage(data, info.height, info.width, info.channels);
  } catch (e) {
    throw new Error(`${name}: corrupt JPEG (${(e as Error).message.split('\n')[0]})`);
  }
  dst.set(img.data, at);
}

async function fill(req: StreamRequest): Promise<void> {
  const dst = new Uint8Array(req.data);
  const jobs: Promise<void>[] = [];
  let d = 0;
  for (let b = 0; b < req.indices.length; b++) {
    const i = req.indices[b]!;
    const t = taskOfIndex(src.taskStart, i);
    const row = i - src.taskStart[t]!;
    const [h, w] = [src.heights[t]!, src.widths[t]!];
    const flip = req.flips[b] !== 0;
    const ref = src.packs[t];
    if (!ref) copyRow(src.sources[t]!, row * 3 * h * w, dst, d, h, w, flip);
    else {
      const pack = packOf(ref.dir);
      const rec = pack.record(ref.task, ref.split, row);
      const bytes = pack.readBytes(rec);
      const name = `${pack.shardPath(rec.shard)} (image at ${rec.offset})`;
      if (ref.storage === 'raw') copyRow(decodeRaw(bytes, rec.height, rec.width, name).data, 0, dst, d, h, w, flip);
      else jobs.push(jpegRow(bytes, rec, name, i, req, flip, ref.out, dst, d));
    }
    d += 3 * h * w;
  }
  await Promise.all(jobs);
}

parentPort?.on('message', (req: StreamRequest) => {
  const state = new Int32Array(req.state);
  fill(req).then(
    () => {
      Atomics.store(state, 0, 1);
      Atomics.notify(state, 0);
    },
    (e: unknown) => {
      const msg = new TextEncoder().encode((e as Error).message.split('\n')[0]!);
      const dst = new Uint8Array(req.state, 8);
      const n = Math.min(msg.length, dst.length);
      dst.set(msg.subarray(0, n));
      Atomics.store(state, 1, n);
      Atomics.store(state, 0, 2);
      Atomics.notify(state, 0);
    },
  );
});
