// `lorkd bench data`: the streaming loader (src/data/stream.ts) against PyTorch's DataLoader with
// torchvision's ImageFolder and PIL (num_workers = cores), on the same files, in one run:
// - 224-jpeg: a tree of JPEGs (random crops of the bundled images, rescaled to 224 px) and its JPEG
//   pack; decode, RandomResizedCrop(224), flip, normalise (goal: >= 1.5x PyTorch); img/s, and the
//   CPU time per image of every thread (lorkd) or process (PyTorch's main and workers) of the loader;
// - 64-raw: a tree of 64 px PNGs and its raw pack; flip, normalise (goal: >= 3x);
// - memory: peak RSS of a training epoch's batches streamed from a pack of `images` (200,000 by
//   default) and of 2,000 images of the same tree, each in its own process (goal: within 100 MB);
// - packing speed: `lorkd pack`'s packSources on the large tree, images per second.
// The trees and packs live under a temporary folder, removed at the end. With --data PACK the
// loader cases read that pack (and PyTorch the folder it was packed from, when it still exists).
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { loadTasks } from '../src/data/medmnist.js';
import { MED6 } from '../src/data/bundled.js';
import { Rng } from '../src/data/rng.js';
import { openPack, packSources, type Storage } from '../src/pack/index.js';
import { loadSuite, trainLoader } from '../src/experiments/data-options.js';
import { runPython } from './pytorch.js';
import { UserError } from '../src/tensor/errors.js';
import { setNumThreads } from '../src/tensor/index.js';
import type { TaskData } from '../src/data/dataset.js';

export interface DataBenchOptions {
  /** Images of the large tree (RSS and packing speed); default 200,000. */
  images: number;
  /** Images of the loader-throughput trees and of the small RSS pack (default 2,000). */
  loaderImages: number;
  batch: number;
  /** A pack to time instead of the generated 224-jpeg one (its source folder, if it still exists, for PyTorch). */
  data?: string;
  /** Skip the PyTorch side. */
  noTorch?: boolean;
  log?: (line: string) => void;
}

export interface DataBenchRow {
  case: '224-jpeg' | '64-raw';
  lorkd_img_per_s: number;
  pytorch_img_per_s: number | null;
  ratio: number | null;
  /** CPU time (every thread or process of the loader) per image: less bent by a busy machine than img/s. */
  lorkd_cpu_ms_per_img: number;
  pytorch_cpu_ms_per_img: number | null;
  /** pytorch_cpu_ms_per_img / lorkd_cpu_ms_per_img. */
  cpu_ratio: number | null;
}

export interface DataBenchResult {
  rows: DataBenchRow[];
  rss_small_mb: number;
  rss_large_mb: number;
  pack_img_per_s: number;
  images_large: number;
  images_small: number;
  cores: number;
}

/** Writes `n` images of side `side` (random crops of the bundled images, rescaled) as an ImageFolder tree under root/{train,val,test}/<task>. */
async function writeTree(root: string, n: number, side: number, format: 'jpeg' | 'png', tasks: TaskData[], log: (s: string) => void): Promise<void> {
  const rng = Rng.from(n, 'bench-data', side);
  const rnd = (): number => rng.float();
  const cores = os.availableParallelism();
  let next = 0;
  const t0 = performance.now();
  const one = async (i: number): Promise<void> => {
    const task = tasks[i % tasks.length]!;
    const s = task.splits.train;
    const row = Math.floor(rnd() * s.n);
    const per = 3 * s.height * s.width;
    const planes = s.images.subarray(row * per, (row + 1) * per);
    const hw = s.height * s.width;
    const hwc = new Uint8Array(per);
    for (let p = 0; p < hw; p++) for (let c = 0; c < 3; c++) hwc[3 * p + c] = planes[c * hw + p]!;
    const cw = Math.max(8, Math.floor(s.width * (0.5 + 0.5 * rnd())));
    const ch = Math.max(8, Math.floor(s.height * (0.5 + 0.5 * rnd())));
    const left = Math.floor(rnd() * (s.width - cw + 1));
    const top = Math.floor(rnd() * (s.height - ch + 1));
    // n training images, then a few for val and test (a task needs every split).
    const split = i < n ? 'train' : i < n + 2 * tasks.length ? 'val' : 'test';
    const dir = path.join(root, split, task.name);
    mkdirSync(dir, { recursive: true });
    const img = sharp(hwc, { raw: { width: s.width, height: s.height, channels: 3 } }).extract({ left, top, width: cw, height: ch }).resize(side, side, { fit: 'fill', kernel: 'linear' });
    await (format === 'jpeg' ? img.jpeg({ quality: 90 }) : img.png()).toFile(path.join(dir, `${String(i).padStart(7, '0')}.${format === 'jpeg' ? 'jpg' : 'png'}`));
  };
  const total = n + 4 * tasks.length;
  const lane = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      await one(i);
      if (i > 0 && i % 20000 === 0) log(`[bench data] ${i}/${total} images of ${root} (${(i / ((performance.now() - t0) / 1000)).toFixed(0)} img/s)`);
    }
  };
  await Promise.all(Array.from({ length: 2 * cores }, lane));
}

/** Packs `tree` into `out`; images per second. */
async function pack(tree: string, out: string, storage: Storage, size: number): Promise<number> {
  const r = await packSources([tree], { out, storage, size, quality: 90, val: 0, test: 0, seed: 0, shardBytes: 256 * 2 ** 20 });
  return r.images / r.seconds;
}

interface Timed {
  img_per_s: number;
  cpu_ms_per_img: number | null;
}

/** Images per second (and CPU ms per image, every thread) of a training loader's second epoch streamed from `dir` (the first warms the workers and the page cache). */
function lorkdEpoch(dir: string, input: number, batch: number): Timed {
  const o = { tasks: [dir], input, batch, seed: 0 };
  const loader = trainLoader(loadSuite(o), o);
  for (const b of loader.epoch(0)) b.dispose();
  let n = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (const b of loader.epoch(1)) {
    n += b.size;
    b.dispose();
  }
  const c = process.cpuUsage(c0);
  return { img_per_s: n / ((performance.now() - t0) / 1000), cpu_ms_per_img: (c.user + c.system) / 1000 / n };
}

const HELPER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'stream-epoch.js');

/** Peak RSS (MB) of a child process streaming a training epoch from `dir`. */
function epochRss(dir: string, input: number, batch: number): number {
  const r = spawnSync(process.execPath, [HELPER, dir, String(input), String(batch)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`streaming ${dir} failed: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { maxRssMb: number }).maxRssMb;
}

export async function benchData(o: DataBenchOptions): Promise<DataBenchResult> {
  for (const [k, v] of [['images', o.images], ['loader-images', o.loaderImages], ['batch', o.batch]] as const) {
    if (!(Number.isInteger(v) && v >= 1)) throw new UserError(`--${k} must be a positive integer, got ${v}`);
  }
  const log = o.log ?? (() => {});
  const cores = os.availableParallelism();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'lorkd-bench-data-'));
  try {
    const tasks = loadTasks(MED6);
    const tree = (name: string) => path.join(tmp, name);
    log(`[bench data] trees under ${tmp}`);
    await writeTree(tree('jpeg-small'), o.loaderImages, 224, 'jpeg', tasks, log);
    await writeTree(tree('png64'), o.loaderImages, 64, 'png', tasks, log);
    await writeTree(tree('jpeg-large'), o.images, 224, 'jpeg', tasks, log);
    log('[bench data] packing');
    const jpegPack = o.data ?? tree('jpeg-small.pack');
    if (!o.data) await pack(tree('jpeg-small'), jpegPack, 'jpeg', 224);
    const jpegTree = o.data ? openPack(o.data).manifest.tasks[0]!.source : tree('jpeg-small');
    await pack(tree('png64'), tree('png64.pack'), 'raw', 64);
    const packRate = await pack(tree('jpeg-large'), tree('jpeg-large.pack'), 'jpeg', 224);
    const torch = (root: string, crop: boolean, size: number): Timed | null =>
      o.noTorch ? null : runPython<Timed>('data_loader.py', { root: path.join(root, 'train'), crop, size, batch: o.batch, workers: cores }, 3_600_000);
    const row = (c: DataBenchRow['case'], lorkd: Timed, pytorch: Timed | null): DataBenchRow => {
      const pc = pytorch?.cpu_ms_per_img ?? null;
      return {
        case: c, lorkd_img_per_s: lorkd.img_per_s, pytorch_img_per_s: pytorch?.img_per_s ?? null, ratio: pytorch ? lorkd.img_per_s / pytorch.img_per_s : null,
        lorkd_cpu_ms_per_img: lorkd.cpu_ms_per_img!, pytorch_cpu_ms_per_img: pc, cpu_ratio: pc !== null ? pc / lorkd.cpu_ms_per_img! : null,
      };
    };
    log('[bench data] loader throughput');
    // The batch tensors are made with one intra-op thread, as PyTorch's main process (set_num_threads(1)):
    // the cores belong to the decoding workers on both sides.
    setNumThreads(1);
    const rows = [
      row('224-jpeg', lorkdEpoch(jpegPack, 224, o.batch), torch(jpegTree, true, 224)),
      row('64-raw', lorkdEpoch(tree('png64.pack'), 64, o.batch), torch(tree('png64'), false, 64)),
    ];
    log('[bench data] peak RSS of a training epoch, small and large pack');
    const small = epochRss(jpegPack, 224, o.batch);
    const large = epochRss(tree('jpeg-large.pack'), 224, o.batch);
    return {
      rows, rss_small_mb: small, rss_large_mb: large, pack_img_per_s: packRate, images_large: o.images, images_small: o.loaderImages, cores,
    };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
