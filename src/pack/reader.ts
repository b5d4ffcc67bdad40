// Reading a pack (docs/PACK.md): the manifest, the index records of a (task, split) and an image's
// bytes with pread on a cached descriptor per shard. Pixels are never read to open a pack; a
// shard's size is checked against the manifest when the shard is first opened, and its SHA-256
// by verify(). Every problem is one UserError line naming the pack file.
import { closeSync, createReadStream, existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { UserError } from '../tensor/errors.js';
import { type OpenFile, openRegular, readAt } from '../io/read.js';
import { type Split, SPLITS } from '../data/dataset.js';
import type { Image } from '../data/image-decode.js';
import { MANIFEST, PACK_FORMAT, PACK_VERSION, type PackManifest, type PackRecord, STORAGES, indexFile, readRecord, recordBytes } from './format.js';
import { decodeStored } from './codec.js';

/** One (task, split)'s index, read whole (16 + 4L bytes per image; pixels are not read). */
interface Index {
  view: DataView;
  count: number;
  recordBytes: number;
  labelsPerImage: number;
}

export class Pack {
  readonly dir: string;
  readonly manifest: PackManifest;
  readonly #indexes = new Map<string, Index>();
  readonly #shards = new Map<number, OpenFile>();

  constructor(dir: string, manifest: PackManifest) {
    this.dir = dir;
    this.manifest = manifest;
  }

  /** Task number of `task` (a number or a task name). */
  taskIndex(task: number | string): number {
    const t = typeof task === 'number' ? task : this.manifest.tasks.findIndex((x) => x.name === task);
    if (!(Number.isInteger(t) && t >= 0 && t < this.manifest.tasks.length)) {
      throw new UserError(`${this.dir}: the pack has no task ${JSON.stringify(task)} (it has ${this.manifest.tasks.map((x) => x.name).join(', ')})`);
    }
    return t;
  }

  #index(task: number | string, split: Split): Index {
    const t = this.taskIndex(task);
    const key = `${t}.${split}`;
    const have = this.#indexes.get(key);
    if (have) return have;
    const info = this.manifest.tasks[t]!;
    const file = path.join(this.dir, indexFile(t, split));
    const rb = recordBytes(info.labelsPerImage);
    const want = info.counts[split];
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(file);
    } catch (e) {
      throw new UserError(`${file}: cannot read pack index (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (bytes.length !== want * rb) throw new UserError(`${file}: pack index has ${bytes.length} bytes, ${want * rb} expected (${want} records of ${rb}): the pack is damaged`);
    const idx = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), count: want, recordBytes: rb, labelsPerImage: info.labelsPerImage };
    this.#indexes.set(key, idx);
    return idx;
  }

  /** Images of `task` in `split`. */
  count(task: number | string, split: Split): number {
    return this.manifest.tasks[this.taskIndex(task)]!.counts[split];
  }

  /** Image `i` of (task, split): where its bytes are, its stored size and label(s). */
  record(task: number | string, split: Split, i: number): PackRecord {
    const idx = this.#index(task, split);
    if (!(Number.isInteger(i) && i >= 0 && i < idx.count)) throw new UserError(`${this.dir}: image ${i} of ${task}/${split} is out of range (0..${idx.count - 1})`);
    const r = readRecord(idx.view, i * idx.recordBytes, idx.labelsPerImage);
    if (r.shard >= this.manifest.shards.length) throw new UserError(`${path.join(this.dir, indexFile(this.taskIndex(task), split))}: record ${i} names shard ${r.shard}, the pack has ${this.manifest.shards.length}: the pack is damaged`);
    return r;
  }

  /** The first label of every image of (task, split), in index order (class counts, stratification). */
  labels(task: number | string, split: Split): Int32Array {
    const idx = this.#index(task, split);
    const out = new Int32Array(idx.count);
    for (let i = 0; i < idx.count; i++) out[i] = idx.view.getInt32(i * idx.recordBytes + 16, true);
    return out;
  }

  /** The path of shard `s`. */
  shardPath(s: number): string {
    return path.join(this.dir, this.manifest.shards[s]!.file);
  }

  #shard(s: number): OpenFile {
    const have = this.#shards.get(s);
    if (have) return have;
    const want = this.manifest.shards[s];
    if (!want) throw new UserError(`${this.dir}: the pack has no shard ${s}`);
    const file = this.shardPath(s);
    const f = openRegular(file, 'pack shard');
    if (f.size !== want.bytes) {
      closeSync(f.fd);
      throw new UserError(`${file}: shard is ${f.size < want.bytes ? 'truncated' : 'damaged'} (${f.size} bytes, the manifest says ${want.bytes})`);
    }
    this.#shards.set(s, f);
    return f;
  }

  /**
   * The stored bytes of a record (pread on the shard's cached descriptor); into the start of
   * `scratch` when it is long enough (a caller's reused buffer: the result is a view of it).
   */
  readBytes(r: PackRecord, scratch?: Uint8Array): Uint8Array {
    const f = this.#shard(r.shard);
    const file = this.shardPath(r.shard);
    if (r.offset + r.length > f.size) throw new UserError(`${file}: shard is truncated (an image at ${r.offset}..${r.offset + r.length} is past its end, ${f.size} bytes)`);
    const b = readAt(file, f, r.offset, r.length, scratch);
    if (b.length !== r.length) throw new UserError(`${file}: shard is truncated (read ${b.length} of ${r.length} bytes at ${r.offset})`);
    return b;
  }

  /** Image `i` of (task, split), decoded (CHW, 3 planes). A corrupt image names its shard. */
  async image(task: number | string, split: Split, i: number): Promise<Image> {
    const r = this.record(task, split, i);
    return decodeStored(this.readBytes(r), this.manifest.storage, r.height, r.width, `${this.shardPath(r.shard)} (image at ${r.offset})`);
  }

  /** Checks shard `s`'s size and SHA-256 against the manifest; a mismatch is one line naming the shard. */
  async verifyShard(s: number): Promise<void> {
    const want = this.manifest.shards[s]!;
    this.#shard(s);
    const file = this.shardPath(s);
    const hash = createHash('sha256');
    await new Promise<void>((resolve, reject) => {
      createReadStream(file).on('data', (c) => hash.update(c)).on('end', resolve).on('error', reject);
    }).catch((e: unknown) => {
      throw new UserError(`${file}: cannot read pack shard (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    });
    if (hash.digest('hex') !== want.sha256) throw new UserError(`${file}: shard is corrupt (its SHA-256 differs from the manifest's)`);
  }

  /** Verifies every shard (size and SHA-256) and every index; `onShard` is called after each shard. */
  async verify(onShard?: (done: number, total: number) => void): Promise<void> {
    for (let t = 0; t < this.manifest.tasks.length; t++) for (const s of SPLITS) this.#index(t, s);
    for (let s = 0; s < this.manifest.shards.length; s++) {
      await this.verifyShard(s);
      onShard?.(s + 1, this.manifest.shards.length);
    }
  }

  /** Closes the cached shard descriptors (the pack can still be read: they reopen on demand). */
  close(): void {
    for (const f of this.#shards.values()) closeSync(f.fd);
    this.#shards.clear();
  }
}

/** Checks the manifest's shape; every problem is one line naming the file. */
export function checkManifest(v: unknown, file: string): PackManifest {
  const fail = (m: string): never => {
    throw new UserError(`${file}: ${m}`);
  };
  if (typeof v !== 'object' || v === null) return fail('not a pack manifest (not a JSON object)');
  const m = v as PackManifest;
  if (m.format !== PACK_FORMAT) fail(`not a pack manifest (format is ${JSON.stringify(m.format)}, not "${PACK_FORMAT}")`);
  if (m.version !== PACK_VERSION) fail(`pack format version ${m.version} is not supported (this lorkd reads version ${PACK_VERSION})`);
  if (!STORAGES.includes(m.storage)) fail(`storage ${JSON.stringify(m.storage)} is not one of ${STORAGES.join(', ')}`);
  if (!(Number.isInteger(m.size) && m.size >= 1)) fail(`size ${JSON.stringify(m.size)} is not a positive integer`);
  if (!Array.isArray(m.tasks) || m.tasks.length === 0) fail('the pack has no tasks');
  if (!Array.isArray(m.shards)) fail('shards is not a list');
  for (const t of m.tasks) {
    if (typeof t.name !== 'string' || !Array.isArray(t.classNames) || !(Number.isInteger(t.labelsPerImage) && t.labelsPerImage >= 1)) fail(`task ${JSON.stringify(t.name)} is malformed`);
    for (const s of SPLITS) if (!(Number.isInteger(t.counts?.[s]) && t.counts[s] >= 0)) fail(`task ${t.name}: counts.${s} is not a count`);
  }
  for (const s of m.shards) if (typeof s.file !== 'string' || !Number.isInteger(s.bytes) || typeof s.sha256 !== 'string' || s.file.includes('..')) fail('a shard entry is malformed');
  return m;
}

/** True when `dir` holds a pack (a manifest.json). */
export const isPack = (dir: string): boolean => existsSync(path.join(dir, MANIFEST));

/**
 * Opens the pack in `dir`: reads and checks manifest.json; index files are read when a (task,
 * split) is first used, shards when an image is first read. A pack whose packing has not finished
 * has no manifest and is refused.
 */
export function openPack(dir: string): Pack {
  const file = path.join(dir, MANIFEST);
  if (!existsSync(file)) {
    throw new UserError(existsSync(path.join(dir, 'pack.journal')) ? `${dir}: the pack is not finished (run lorkd pack again with the same arguments to complete it)` : `${dir}: not a pack (no ${MANIFEST})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: not a readable pack manifest (${(e as Error).message.split('\n')[0]})`);
  }
  return new Pack(dir, checkManifest(v, file));
}
