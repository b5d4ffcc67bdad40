// Packing speed, callable from a bench script (`lorkd bench data` reports pack_img_per_s from it):
// a JPEG image-folder tree generated from the bundled images (random crops of the 64x64 tasks,
// rescaled to 224 px, as PNG-free JPEG files under class folders), then packed, with the load
// average before and after so that a busy machine's figure can be recognised.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { loadMedMnist } from '../data/medmnist.js';
import { Rng } from '../data/rng.js';
import { imageToHwc } from './codec.js';
import { packSources } from './pack.js';
import type { Storage } from './format.js';

export interface JpegTreeOptions {
  /** Images in the tree. */
  n: number;
  /** Side of each image (default 224). */
  side?: number;
  /** Bundled 64x64 task the crops come from (default bloodpbc; its class names become folders). */
  task?: string;
  seed?: number;
  /** JPEG files written at once (default 16). */
  concurrency?: number;
}

/**
 * Writes `o.n` JPEG files under `dir/<class>/` (flat ImageFolder layout): each a random crop (half
 * to all of each side) of a random training image of the bundled task, rescaled to side x side.
 * Returns the folder.
 */
export async function makeJpegTree(dir: string, o: JpegTreeOptions): Promise<string> {
  const side = o.side ?? 224;
  const data = loadMedMnist(o.task ?? 'bloodpbc');
  const s = data.splits.train;
  const rng = Rng.from(o.seed ?? 0, 'jpeg-tree');
  for (const c of data.classNames) mkdirSync(path.join(dir, c), { recursive: true });
  const per = 3 * s.height * s.width;
  const one = async (i: number): Promise<void> => {
    const row = rng.nextU32() % s.n;
    const w = Math.max(8, Math.round(s.width * (0.5 + 0.5 * (rng.nextU32() / 2 ** 32))));
    const h = Math.max(8, Math.round(s.height * (0.5 + 0.5 * (rng.nextU32() / 2 ** 32))));
    const left = rng.nextU32() % (s.width - w + 1);
    const top = rng.nextU32() % (s.height - h + 1);
    const img = imageToHwc({ height: s.height, width: s.width, data: s.images.subarray(row * per, (row + 1) * per), grey: false });
    const file = path.join(dir, data.classNames[s.labels[row]!]!, `img${String(i).padStart(8, '0')}.jpg`);
    await sharp(img.data, { raw: { width: s.width, height: s.height, channels: img.channels } })
      .extract({ left, top, width: w, height: h })
      .resize(side, side, { kernel: 'cubic' })
      .jpeg({ quality: 90 })
      .toFile(file);
  };
  const conc = o.concurrency ?? 16;
  for (let i = 0; i < o.n; i += conc) await Promise.all(Array.from({ length: Math.min(conc, o.n - i) }, (_, k) => one(i + k)));
  return dir;
}

export interface PackBenchOptions {
  /** Images to pack (default 2000). */
  n?: number;
  /** Stored size (default 224) and form (default jpeg). */
  size?: number;
  storage?: Storage;
  threads?: number;
  /** An existing image folder to pack instead of a generated tree. */
  source?: string;
}

export interface PackBenchResult {
  images: number;
  seconds: number;
  pack_img_per_s: number;
  storage: Storage;
  size: number;
  threads: number;
  loadavg_before: number;
  loadavg_after: number;
}

/** Packs a generated JPEG tree (or `o.source`) into a temporary pack and times it; everything is removed after. */
export async function benchPack(o: PackBenchOptions = {}): Promise<PackBenchResult> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'lorkd-bench-pack-'));
  try {
    const source = o.source ?? (await makeJpegTree(path.join(tmp, 'tree'), { n: o.n ?? 2000 }));
    const storage = o.storage ?? 'jpeg';
    const size = o.size ?? 224;
    const threads = o.threads ?? os.availableParallelism();
    const load0 = os.loadavg()[0]!;
    const r = await packSources([source], { out: path.join(tmp, 'pack'), storage, size, quality: 90, val: 0.1, test: 0.2, seed: 0, shardBytes: 64 * 2 ** 20, threads });
    return { images: r.images, seconds: r.seconds, pack_img_per_s: r.images / r.seconds, storage, size, threads, loadavg_before: load0, loadavg_after: os.loadavg()[0]! };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
