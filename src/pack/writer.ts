// Writing a pack (docs/PACK.md) so that a killed pack continues where it stopped. Items (source
// files, npz rows) arrive in a fixed order; their images are appended to the current shard, and a
// shard is closed between items once the next item would pass shardBytes. A closed shard is
// fsynced, its records go to .parts/<shard>.rec, and then one line in pack.journal says it is done
// (with the item to continue from). A new run with the same fingerprint keeps the journal's
// shards and starts again at that item; finish() assembles the index files from the parts and
// writes manifest.json last.
import { appendFileSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import path from 'node:path';
import { UserError } from '../tensor/errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { type Split, SPLITS } from '../data/dataset.js';
import { MANIFEST, MAX_SHARD_BYTES, type PackManifest, type PackShard, indexFile, recordBytes, shardFile, writeRecord } from './format.js';

export const JOURNAL = 'pack.journal';
const PARTS = '.parts';
/** Bytes before a part record's index record: task u16, split u8, pad u8. */
const PART_HEAD = 4;

/** One stored image of an item. */
export interface StoredImage {
  bytes: Uint8Array;
  height: number;
  width: number;
  grey: boolean;
}

/** What the journal keeps per task, cumulative up to a closed shard. */
interface TaskTally {
  counts: Record<Split, number>;
  skipped: number;
  grey: boolean;
}

interface JournalShard extends PackShard {
  nextItem: number;
  tally: TaskTally[];
}

const newTally = (): TaskTally => ({ counts: { train: 0, val: 0, test: 0 }, skipped: 0, grey: true });

export interface WriterTask {
  labelsPerImage: number;
}

export class PackWriter {
  readonly dir: string;
  /** The item to continue from (0 for a new pack). */
  readonly resumeAt: number;
  /** Shards kept from an earlier run. */
  readonly resumedShards: number;
  readonly #tasks: WriterTask[];
  readonly #shardBytes: number;
  readonly #shards: PackShard[] = [];
  #tally: TaskTally[];
  #fd: number | null = null;
  #hash: Hash | null = null;
  #bytes = 0;
  #images = 0;
  #parts: Uint8Array[] = [];

  private constructor(dir: string, tasks: WriterTask[], shardBytes: number, journal: JournalShard[]) {
    this.dir = dir;
    this.#tasks = tasks;
    this.#shardBytes = shardBytes;
    for (const j of journal) this.#shards.push({ file: j.file, bytes: j.bytes, images: j.images, sha256: j.sha256 });
    const last = journal[journal.length - 1];
    this.resumeAt = last?.nextItem ?? 0;
    this.resumedShards = journal.length;
    this.#tally = last ? last.tally.map((t) => ({ ...t, counts: { ...t.counts } })) : tasks.map(newTally);
  }

  /**
   * Opens `dir` for packing: a new pack, or the continuation of a killed one when its journal's
   * fingerprint equals `fingerprint` (shards that the journal does not list are rewritten).
   * A finished pack or a different pack in `dir` is refused.
   */
  static open(dir: string, fingerprint: string, tasks: WriterTask[], shardBytes: number): PackWriter {
    if (!(Number.isInteger(shardBytes) && shardBytes >= 1 && shardBytes <= MAX_SHARD_BYTES)) throw new UserError(`shard size must be 1..${MAX_SHARD_BYTES} bytes, got ${shardBytes}`);
    if (existsSync(path.join(dir, MANIFEST))) throw new UserError(`${dir}: already holds a finished pack (remove it or choose another --out)`);
    if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UserError(`${dir}: not a folder`);
    const jfile = path.join(dir, JOURNAL);
    let journal: JournalShard[] = [];
    if (existsSync(jfile)) {
      const lines = readFileSync(jfile, 'utf8').split('\n');
      let head: { fingerprint?: string } = {};
      try {
        head = JSON.parse(lines[0] ?? '') as { fingerprint?: string };
      } catch {
        // a journal whose first line was cut off holds nothing kept
      }
      if (head.fingerprint !== undefined && head.fingerprint !== fingerprint) {
        throw new UserError(`${dir}: holds an unfinished pack of other sources or options (continue it with its own arguments, or remove ${dir})`);
      }
      // A line cut off by a kill is not a closed shard; shards are kept only while their files are whole.
      for (const line of lines.slice(1)) {
        let j: JournalShard;
        try {
          j = JSON.parse(line) as JournalShard;
        } catch {
          break;
        }
        const f = path.join(dir, j.file);
        if (!existsSync(f) || statSync(f).size !== j.bytes || !existsSync(path.join(dir, PARTS, `${journal.length}.rec`))) break;
        journal.push(j);
      }
      if (head.fingerprint === undefined) journal = [];
    }
    mkdirSync(path.join(dir, 'shards'), { recursive: true });
    mkdirSync(path.join(dir, 'index'), { recursive: true });
    mkdirSync(path.join(dir, PARTS), { recursive: true });
    // The journal is rewritten with the kept lines only (a cut-off line would otherwise stay).
    writeFileAtomic(jfile, [JSON.stringify({ fingerprint }), ...journal.map((j) => JSON.stringify(j))].join('\n') + '\n');
    return new PackWriter(dir, tasks, shardBytes, journal);
  }

  /** Counts a skipped item (a bad source file) of `task`. */
  skip(task: number): void {
    this.#tally[task]!.skipped++;
  }

  /**
   * Appends the images of item `item` (all frames of one source file, or one npz row) to the
   * pack. `nextItem` is the item to continue from once they are in a closed shard.
   */
  add(task: number, split: Split, labels: Int32Array, images: StoredImage[], nextItem: number): void {
    const need = images.reduce((s, im) => s + im.bytes.length, 0);
    // Close the current shard between items, before it would pass shardBytes.
    if (this.#fd !== null && this.#bytes > 0 && this.#bytes + need > this.#shardBytes) this.#closeShard(nextItem - 1);
    if (this.#bytes + need > MAX_SHARD_BYTES) throw new UserError(`an item of ${need} bytes does not fit a shard (at most ${MAX_SHARD_BYTES})`);
    if (this.#fd === null) this.#openShard();
    const t = this.#tasks[task]!;
    const rb = recordBytes(t.labelsPerImage);
    if (labels.length !== t.labelsPerImage) throw new Error(`pack writer: ${labels.length} labels for a task with ${t.labelsPerImage}`);
    for (const im of images) {
      const part = new Uint8Array(PART_HEAD + rb);
      const view = new DataView(part.buffer);
      view.setUint16(0, task, true);
      view.setUint8(2, SPLITS.indexOf(split));
      writeRecord(view, PART_HEAD, { shard: this.#shards.length, offset: this.#bytes, length: im.bytes.length, height: im.height, width: im.width, labels });
      this.#parts.push(part);
      let done = 0;
      while (done < im.bytes.length) done += writeSync(this.#fd!, im.bytes, done, im.bytes.length - done);
      this.#hash!.update(im.bytes);
      this.#bytes += im.bytes.length;
      this.#images++;
      const tally = this.#tally[task]!;
      tally.counts[split]++;
      tally.grey &&= im.grey;
    }
    this.#pendingNext = nextItem;
  }

  #pendingNext = 0;

  /** Notes that items up to `nextItem` are handled (skipped items advance it too). */
  advance(nextItem: number): void {
    this.#pendingNext = nextItem;
  }

  #openShard(): void {
    const file = path.join(this.dir, shardFile(this.#shards.length));
    this.#fd = openSync(file, 'w');
    this.#hash = createHash('sha256');
    this.#bytes = 0;
    this.#images = 0;
    this.#parts = [];
  }

  #closeShard(nextItem: number): void {
    const fd = this.#fd!;
    fsyncSync(fd);
    closeSync(fd);
    this.#fd = null;
    const s = this.#shards.length;
    const shard: PackShard = { file: shardFile(s), bytes: this.#bytes, images: this.#images, sha256: this.#hash!.digest('hex') };
    writeFileAtomic(path.join(this.dir, PARTS, `${s}.rec`), this.#parts);
    const line: JournalShard = { ...shard, nextItem, tally: this.#tally.map((t) => ({ ...t, counts: { ...t.counts } })) };
    const jfile = path.join(this.dir, JOURNAL);
    appendFileSync(jfile, JSON.stringify(line) + '\n');
    const jfd = openSync(jfile, 'r+');
    fsyncSync(jfd);
    closeSync(jfd);
    this.#shards.push(shard);
    this.#parts = [];
  }

  /** Closes an open shard's file without keeping it (a stopped or failed pack; the next run rewrites it). */
  close(): void {
    if (this.#fd === null) return;
    closeSync(this.#fd);
    this.#fd = null;
  }

  /** Closes the last shard, writes the index files and then manifest.json (the pack is then finished). */
  finish(base: Omit<PackManifest, 'tasks' | 'counts' | 'skipped' | 'shards' | 'shardBytes'> & { tasks: Omit<PackManifest['tasks'][number], 'counts' | 'skipped' | 'channels'>[] }): PackManifest {
    if (this.#fd !== null) this.#closeShard(this.#pendingNext);
    const fds = new Map<string, number>();
    try {
      for (let t = 0; t < this.#tasks.length; t++) for (const s of SPLITS) fds.set(`${t}.${s}`, openSync(path.join(this.dir, indexFile(t, s)), 'w'));
      for (let s = 0; s < this.#shards.length; s++) {
        const parts = readFileSync(path.join(this.dir, PARTS, `${s}.rec`));
        const view = new DataView(parts.buffer, parts.byteOffset, parts.byteLength);
        for (let at = 0; at < parts.length; ) {
          const task = view.getUint16(at, true);
          const split = SPLITS[view.getUint8(at + 2)]!;
          const rb = recordBytes(this.#tasks[task]!.labelsPerImage);
          writeSync(fds.get(`${task}.${split}`)!, parts, at + PART_HEAD, rb);
          at += PART_HEAD + rb;
        }
      }
      for (const fd of fds.values()) fsyncSync(fd);
    } finally {
      for (const fd of fds.values()) closeSync(fd);
    }
    const tasks = base.tasks.map((t, i) => ({ ...t, channels: (this.#tally[i]!.grey ? 1 : 3) as 1 | 3, counts: this.#tally[i]!.counts, skipped: this.#tally[i]!.skipped }));
    const counts = { train: 0, val: 0, test: 0 };
    for (const t of tasks) for (const s of SPLITS) counts[s] += t.counts[s];
    const manifest: PackManifest = { ...base, shardBytes: this.#shardBytes, tasks, counts, skipped: tasks.reduce((a, t) => a + t.skipped, 0), shards: this.#shards };
    writeFileAtomic(path.join(this.dir, MANIFEST), JSON.stringify(manifest, null, 1) + '\n');
    rmSync(path.join(this.dir, PARTS), { recursive: true, force: true });
    rmSync(path.join(this.dir, JOURNAL), { force: true });
    return manifest;
  }
}
