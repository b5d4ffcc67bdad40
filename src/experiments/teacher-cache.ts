// The frozen teacher's outputs for every training image, computed once and kept on disk in the run
// directory, so later epochs never run the teacher (any teacher: teacher/teacher.ts). Both views
// of each image (as is, and horizontally flipped) are cached, so the random flip is handled
// exactly: row i is view 0 of train sample i, row N + i its flipped view.
//
// On disk (teacher-cache-<key>.*): one file of (2N, F) rows per output the teacher gives
// (`.features.bin`, `.logits.bin`; float32 or float16), and `.json` saying the shape, how many rows
// are filled, and (once full) the features' per-dimension statistics. The fill writes a chunk of
// rows with pwrite, syncs it, then records the count atomically: a killed fill continues from the
// last recorded row. Training reads a batch's rows with pread (teacher-rows.ts), so memory holds
// one batch of the cache, whatever the data set's size.
//
// The key: the teacher file's hash, the data's identity (a pack's manifest checksum, or a hash of
// an in-memory split: SuiteSplit.identity), the teacher's transform (its own input size and
// normalisation) and, for an ONNX teacher, the outputs chosen.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Teacher } from './teacher/index.js';
import { type DataLoader, type TransformOptions, makeBatch } from '../data/index.js';
import { type Tensor, tidy } from '../tensor/index.js';
import { RowFile, type RowDType, type RowShape } from '../io/row-file.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readRegular } from '../io/read.js';
import type { RunDir } from './run-dir.js';
import type { Progress } from './progress.js';
import { UserError } from '../tensor/errors.js';
import type { ProcessGroup } from '../dist/index.js';
import { type ColumnStats, DiskRows, columnStats } from './teacher-rows.js';

/** Data parallelism: ranks > 0 read rank 0's cache from the run directory the user sees. */
export interface CacheShare {
  group: ProcessGroup;
  /** Rank 0's run directory (ranks > 0 write to a private scratch folder). */
  sharedOut: string;
}

export type CacheOutput = 'features' | 'logits';
const OUTPUTS: readonly CacheOutput[] = ['features', 'logits'];

/** The `.json` record of a cache. */
export interface CacheRecord {
  lorkd_format: 'teacher-cache';
  version: 2;
  key: string;
  rows: number;
  dtype: RowDType;
  /** Width of each output the teacher gives. */
  widths: Partial<Record<CacheOutput, number>>;
  /** Rows written and synced (the fill continues from here). */
  filled: number;
  /** The features' per-dimension statistics over all 2N rows (set when the fill is complete). */
  stats: ColumnStats | null;
}

export interface TeacherCache {
  /** (2N, F) rows on disk (null: the teacher gives none). */
  features: DiskRows | null;
  /** (2N, C) unified-head logits, same rows (null: the teacher gives none). */
  logits: DiskRows | null;
  /** The features standardised per dimension over the training set (null without features). */
  standardised(): DiskRows | null;
  n: number;
  /** The `.json` record's path. */
  file: string;
  dispose(): void;
}

export interface CacheOptions {
  share?: CacheShare | null;
  /** How the rows are stored (default float32). */
  dtype?: RowDType;
  /** The fill records its progress at most this often (default 1000 ms; 0: after every chunk). */
  commitMs?: number;
}

export function cacheKey(teacherFile: string, loader: DataLoader, transform: TransformOptions, tag = ''): string {
  const h = createHash('sha256');
  h.update(readRegular(teacherFile));
  const s = loader.split;
  h.update(s.identity());
  h.update(JSON.stringify({ n: s.n, size: transform.size ?? null, mean: transform.mean ?? null, std: transform.std ?? null, tasks: s.taskSizes }));
  if (tag) h.update(tag);
  return h.digest('hex').slice(0, 16);
}

/** The teacher's transform: its own input size and normalisation, batches made where it runs. */
export function teacherTransform(teacher: Teacher): TransformOptions {
  const p = teacher.preprocessing;
  return { size: p.input, mean: p.mean, std: p.std, device: teacher.device };
}

const dataFile = (base: string, k: CacheOutput): string => `${base}.${k}.bin`;

function readRecord(file: string): CacheRecord | null {
  if (!existsSync(file)) return null;
  try {
    const r = JSON.parse(readFileSync(file, 'utf8')) as CacheRecord;
    return r.lorkd_format === 'teacher-cache' && r.version === 2 ? r : null;
  } catch {
    return null;
  }
}

const complete = (r: CacheRecord | null): r is CacheRecord => r !== null && r.filled === r.rows && (r.widths.features === undefined || r.stats !== null);

/** Opens a complete cache's tables (base: the path without extension). */
function openCache(base: string, r: CacheRecord, n: number): TeacherCache {
  const shape = (k: CacheOutput): RowShape => ({ rows: r.rows, width: r.widths[k]!, dtype: r.dtype });
  const open = (k: CacheOutput): DiskRows | null => (r.widths[k] !== undefined ? new DiskRows(dataFile(base, k), shape(k)) : null);
  const features = open('features');
  const logits = open('logits');
  const opened: DiskRows[] = [];
  return {
    features, logits, n, file: `${base}.json`,
    standardised: () => {
      if (r.widths.features === undefined) return null;
      const t = new DiskRows(dataFile(base, 'features'), shape('features'), r.stats);
      opened.push(t);
      return t;
    },
    dispose: () => {
      features?.dispose();
      logits?.dispose();
      for (const t of opened.splice(0)) t.dispose();
    },
  };
}

/**
 * Data parallelism: rank 0 fills the cache in the run directory; the other ranks (whose own run
 * directory is private, src/cli/distributed.ts) wait until its record says it is complete and read
 * the same files, so the teacher runs once per run, not once per rank.
 */
function waitForRank0(name: string, progress: Progress, share: CacheShare): string {
  const group = share.group;
  const base = path.join(share.sharedOut, name);
  const limitMs = Math.max(3600, group.env.timeoutS * 30) * 1000;
  const t0 = Date.now();
  if (!complete(readRecord(`${base}.json`))) progress.log(`[teacher] rank ${group.rank}: waiting for rank 0's teacher outputs (${name})`);
  const sleep = new Int32Array(new SharedArrayBuffer(4));
  while (!complete(readRecord(`${base}.json`))) {
    if (Date.now() - t0 > limitMs) throw new UserError(`rank ${group.rank}: rank 0 did not complete ${base}.json within ${Math.round(limitMs / 1000)} s`);
    Atomics.wait(sleep, 0, 0, 500);
  }
  return base;
}

/** Returns the cached teacher outputs, computing (or continuing) them, with progress, when not complete yet. */
export async function teacherOutputs(teacher: Teacher, loader: DataLoader, run: RunDir, progress: Progress, o: CacheOptions = {}): Promise<TeacherCache> {
  const transform = teacherTransform(teacher);
  const key = cacheKey(teacher.file, loader, transform, teacher.cacheTag);
  const name = `teacher-cache-${key}`;
  const n = loader.split.n;
  const share = o.share ?? null;
  if (share && share.group.rank !== 0) {
    const base = waitForRank0(name, progress, share);
    return openCache(base, readRecord(`${base}.json`)!, n);
  }
  const base = run.file(name);
  const found = readRecord(`${base}.json`);
  if (complete(found)) {
    progress.log(`[decompose] teacher outputs from cache ${name}`);
    return openCache(base, found, n);
  }
  const record = await fill(teacher, loader, transform, base, key, found, progress, o);
  return openCache(base, record, n);
}

/** Runs the teacher over the rows not filled yet, chunk by chunk, then adds the feature statistics. */
async function fill(teacher: Teacher, loader: DataLoader, transform: TransformOptions, base: string, key: string, found: CacheRecord | null, progress: Progress, o: CacheOptions): Promise<CacheRecord> {
  const n = loader.split.n;
  const dtype = o.dtype ?? 'float32';
  const bs = teacher.batchSize;
  const widths: CacheRecord['widths'] = {};
  for (const k of OUTPUTS) if (teacher.outputs.includes(k)) widths[k] = k === 'features' ? teacher.numFeatures ?? undefined : teacher.numLogits ?? undefined;
  // A record of another shape (or none) starts over; the same shape continues where it stopped.
  const rowBytes = (k: CacheOutput): number => widths[k]! * (dtype === 'float32' ? 4 : 2);
  const filesThere = (r: CacheRecord): boolean => r.filled === 0 || Object.keys(widths).every((k) => existsSync(dataFile(base, k as CacheOutput)) && statSync(dataFile(base, k as CacheOutput)).size === r.rows * rowBytes(k as CacheOutput));
  const same = found !== null && found.rows === 2 * n && found.dtype === dtype && JSON.stringify(found.widths) === JSON.stringify(widths) && found.key === key && filesThere(found);
  let record: CacheRecord = same ? found : { lorkd_format: 'teacher-cache', version: 2, key, rows: 2 * n, dtype, widths, filled: 0, stats: null };
  const commit = (): void => writeFileAtomic(`${base}.json`, JSON.stringify(record) + '\n');
  if (!same) {
    for (const k of OUTPUTS) rmSync(dataFile(base, k), { force: true });
  }
  const files = new Map<CacheOutput, RowFile>();
  const chunks = (from: number): number => {
    let c = 0;
    for (let r = from; r < 2 * n; r += Math.min(bs, n - (r % n))) c++;
    return c;
  };
  try {
    if (record.filled > 0) progress.log(`[teacher] continuing the fill of ${path.basename(base)} from row ${record.filled} of ${2 * n}`);
    progress.start(`[decompose] teacher outputs of ${teacher.file} (cached once)`, chunks(0));
    let done = chunks(0) - chunks(record.filled);
    let last = performance.now();
    for (let r = record.filled; r < 2 * n; ) {
      const flip = r >= n ? 1 : 0;
      const s = r - flip * n;
      const m = Math.min(bs, n - s);
      const idx = Int32Array.from({ length: m }, (_, i) => s + i);
      const b = makeBatch(loader.split, idx, new Uint8Array(m).fill(flip), transform);
      let out: { features?: Tensor; logits?: Tensor };
      try {
        out = await teacher.forward(b.images);
      } finally {
        b.dispose();
      }
      try {
        for (const k of OUTPUTS) {
          const t = out[k];
          if (!t || widths[k] === undefined) continue;
          if (t.shape.length !== 2 || t.size(0) !== m || t.size(1) !== widths[k]) throw new UserError(`${teacher.file}: ${k} of shape [${t.shape.join(', ')}], expected [${m}, ${widths[k]}]`);
          let f = files.get(k);
          if (!f) files.set(k, (f = RowFile.openForWrite(dataFile(base, k), { rows: 2 * n, width: widths[k]!, dtype })));
          f.write(r, tidy(() => (dtype === 'float32' ? t.to('cpu').float() : t.to('cpu').to('float16')).contiguous().toBytes()));
        }
      } finally {
        out.features?.dispose();
        out.logits?.dispose();
      }
      r += m;
      const now = performance.now();
      if (r === 2 * n || now - last >= (o.commitMs ?? 1000)) {
        for (const f of files.values()) f.sync();
        record = { ...record, filled: r };
        commit();
        last = now;
      }
      progress.update(++done, {});
    }
  } finally {
    for (const f of files.values()) f.close();
    progress.stop();
  }
  if (widths.features !== undefined && record.stats === null) {
    record = { ...record, stats: columnStats(dataFile(base, 'features'), { rows: 2 * n, width: widths.features, dtype }) };
    commit();
  }
  if (record.filled === 0) commit(); // an empty training split
  return record;
}
