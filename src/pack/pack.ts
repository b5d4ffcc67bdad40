// `lorkd pack`: sources -> a pack (docs/PACK.md). Items are listed in a fixed order (sources.ts),
// decoded, resized and encoded on every core (a piscina pool of worker.ts), and written in that
// order by PackWriter, with at most `window` items in flight, so memory stays bounded however many
// images there are. A bad file is one line (onSkip) and counted. A killed pack continues at the
// item after its last closed shard.
import os from 'node:os';
import path from 'node:path';
import { Piscina } from 'piscina';
import { UserError } from '../tensor/errors.js';
import { type Split, SPLITS } from '../data/dataset.js';
import type { MedMnistStream } from '../data/medmnist.js';
import { PACK_FORMAT, PACK_VERSION, type PackManifest, type Storage, MAX_STORED_SIDE } from './format.js';
import { PackWriter } from './writer.js';
import { type SourceTask, listSources } from './sources.js';
import type { PackJob, PackReply } from './worker.js';

export interface PackOptions {
  out: string;
  storage: Storage;
  size: number;
  quality: number;
  val: number;
  test: number;
  seed: number;
  shardBytes: number;
  /** Worker threads (default: the machine's cores). */
  threads?: number;
  /** Items in flight at most (default 4 per thread). */
  window?: number;
  /** Called after each item with (items done, items in all). */
  onProgress?: (done: number, total: number, images: number) => void;
  /** Called with the one-line reason for each skipped file. */
  onSkip?: (line: string) => void;
  /** Called once the items are listed, with the item to continue from (0 for a new pack). */
  onStart?: (resumeAt: number, total: number) => void;
  /** Stop after this many items (tests: a pack that is cut off). */
  stopAfter?: number;
}

export interface PackResult {
  manifest: PackManifest | null;
  images: number;
  items: number;
  resumedAt: number;
  seconds: number;
}

export const DEFAULT_SHARD_BYTES = 256 * 2 ** 20;

function checkOptions(o: PackOptions): void {
  if (!(Number.isInteger(o.size) && o.size >= 1 && o.size <= MAX_STORED_SIDE)) throw new UserError(`--size must be an integer in 1..${MAX_STORED_SIDE}, got ${o.size}`);
  if (!(Number.isInteger(o.quality) && o.quality >= 1 && o.quality <= 100)) throw new UserError(`--quality must be an integer in 1..100, got ${o.quality}`);
}

/** The worker's module (compiled next to this file). */
const workerFile = new URL('./worker.js', import.meta.url).href;

/** Packs `sources` into `o.out` (see the file comment). */
export async function packSources(sources: readonly string[], o: PackOptions): Promise<PackResult> {
  checkOptions(o);
  const t0 = Date.now();
  const tasks = listSources(sources, { val: o.val, test: o.test, seed: o.seed });
  const total = tasks.reduce((s, t) => s + t.items.length, 0);
  const fingerprint = JSON.stringify({
    v: PACK_VERSION, sources: tasks.map((t) => [t.name, path.resolve(t.source), t.items.length, t.classNames]),
    storage: o.storage, size: o.size, quality: o.storage === 'jpeg' ? o.quality : null, val: o.val, test: o.test, seed: o.seed, shardBytes: o.shardBytes,
  });
  const writer = PackWriter.open(o.out, fingerprint, tasks.map((t) => ({ labelsPerImage: t.labelsPerImage })), o.shardBytes);
  o.onStart?.(writer.resumeAt, total);
  // (task, item within the task) of global item g
  const starts = tasks.map((_, i) => tasks.slice(0, i).reduce((s, t) => s + t.items.length, 0));
  const locate = (g: number): [number, number] => {
    let t = 0;
    while (t + 1 < tasks.length && starts[t + 1]! <= g) t++;
    return [t, g - starts[t]!];
  };
  const cursors = new Map<SourceTask, NpzCursor>();
  const jobOf = async (task: SourceTask, i: number): Promise<PackJob> => {
    const item = task.items[i]!;
    const base = { storage: o.storage, size: o.size, quality: o.quality };
    if (item.file !== undefined) return { ...base, file: item.file };
    const npz = task.npz!;
    let c = cursors.get(task);
    if (!c) cursors.set(task, (c = new NpzCursor(npz)));
    const s = npz.data.splits[item.split];
    return { ...base, pixels: { data: await c.row(item.split, item.row!), height: s.height, width: s.width, grey: npz.data.sourceChannels === 1 } };
  };
  const threads = o.threads ?? os.availableParallelism();
  const pool = new Piscina<PackJob, PackReply>({ filename: workerFile, minThreads: threads, maxThreads: threads });
  const window = o.window ?? 4 * threads;
  const end = Math.min(total, o.stopAfter ?? total);
  let images = 0;
  try {
    const inFlight: Promise<PackReply>[] = [];
    let next = writer.resumeAt;
    const fill = async (): Promise<void> => {
      while (inFlight.length < window && next < end) {
        const [t, i] = locate(next++);
        const p = pool.run(await jobOf(tasks[t]!, i));
        p.catch(() => {}); // awaited in order below; an early failure must not go unhandled meanwhile
        inFlight.push(p);
      }
    };
    await fill();
    for (let g = writer.resumeAt; g < end; g++) {
      const reply = await inFlight.shift()!;
      await fill();
      const [t, i] = locate(g);
      const item = tasks[t]!.items[i]!;
      if ('error' in reply) {
        o.onSkip?.(reply.error);
        writer.skip(t);
        writer.advance(g + 1);
      } else if (reply.images.length === 0) {
        writer.advance(g + 1);
      } else {
        writer.add(t, item.split, item.labels, reply.images, g + 1);
        images += reply.images.length;
      }
      o.onProgress?.(g + 1, total, images);
    }
  } catch (e) {
    writer.close();
    throw e;
  } finally {
    await pool.destroy();
    for (const t of tasks) t.npz?.close();
  }
  if (end < total) {
    writer.close();
    return { manifest: null, images, items: end, resumedAt: writer.resumeAt, seconds: (Date.now() - t0) / 1000 };
  }
  const manifest = writer.finish({
    format: PACK_FORMAT,
    version: PACK_VERSION,
    storage: o.storage,
    size: o.size,
    resize: { method: 'bilinear', antialias: false, align_corners: false, fit: o.storage === 'raw' ? 'square' : 'shorter-side' },
    ...(o.storage === 'jpeg' ? { quality: o.quality } : {}),
    seed: o.seed,
    split: { val: o.val, test: o.test },
    created: new Date().toISOString(),
    tasks: tasks.map((t) => ({ name: t.name, classNames: t.classNames, task: t.task, labelsPerImage: t.labelsPerImage, source: t.source })),
  });
  return { manifest, images, items: total, resumedAt: writer.resumeAt, seconds: (Date.now() - t0) / 1000 };
}

/**
 * Reads an npz source's rows in item order (split by split, row by row), streaming each split's
 * images member once; rows before the first one asked for (a resumed pack) are read and dropped.
 */
class NpzCursor {
  #split: Split | null = null;
  #next = 0;
  #rows: AsyncGenerator<Uint8Array> | null = null;

  constructor(readonly npz: MedMnistStream) {}

  async row(split: Split, row: number): Promise<Uint8Array> {
    if (split !== this.#split || row < this.#next) {
      await this.#rows?.return(undefined);
      this.#rows = this.npz.rows(split);
      this.#split = split;
      this.#next = 0;
    }
    for (;;) {
      const r = await this.#rows!.next();
      if (r.done) throw new UserError(`${this.npz.data.file}: ${split}_images ends before row ${row}`);
      if (this.#next++ === row) return r.value;
    }
  }
}

/** A one-paragraph summary of a finished pack. */
export function packSummary(m: PackManifest, r: PackResult): string {
  const bytes = m.shards.reduce((s, x) => s + x.bytes, 0);
  const lines = [
    `packed ${m.counts.train + m.counts.val + m.counts.test} images (${SPLITS.map((s) => `${s} ${m.counts[s]}`).join(', ')}) of ${m.tasks.length} task${m.tasks.length > 1 ? 's' : ''} into ${m.shards.length} shard${m.shards.length === 1 ? '' : 's'} (${(bytes / 2 ** 20).toFixed(1)} MiB, ${m.storage} ${m.size}${m.storage === 'jpeg' ? ` q${m.quality}` : ''})`,
    `skipped ${m.skipped} bad file${m.skipped === 1 ? '' : 's'}${m.skipped ? ` (${m.tasks.filter((t) => t.skipped).map((t) => `${t.name} ${t.skipped}`).join(', ')})` : ''}`,
    `${r.seconds.toFixed(1)} s, ${(r.images / Math.max(r.seconds, 1e-3)).toFixed(0)} img/s${r.resumedAt ? ` (continued at item ${r.resumedAt})` : ''}`,
  ];
  return lines.join('\n');
}
