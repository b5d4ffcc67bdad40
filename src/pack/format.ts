// The on-disk pack (docs/PACK.md): shard files of image bytes, one fixed-record index file per
// (task, split), and manifest.json. This file holds the layout (names, record bytes, the manifest's
// type and its checks); reader.ts reads a pack, writer.ts writes one.
import path from 'node:path';
import type { Split, TaskType } from '../data/dataset.js';

export const PACK_FORMAT = 'lorkd-pack';
export const PACK_VERSION = 1;
export const MANIFEST = 'manifest.json';

/** How an image's bytes are stored: raw uint8 planes (CHW, 1 or 3 channels) or a JPEG file. */
export type Storage = 'raw' | 'jpeg';
export const STORAGES: readonly Storage[] = ['raw', 'jpeg'];

/** A task type as MedMNIST names it, plus multi-label (one 0/1 value per class). */
export type PackTaskType = TaskType | 'multi-label';

export interface PackTask {
  name: string;
  classNames: string[];
  task: PackTaskType;
  /** 1 when every stored image of the task is grey, else 3. */
  channels: 1 | 3;
  /** Label values per record: 1, or the number of classes for a multi-label task. */
  labelsPerImage: number;
  /** Images per split (records in index/<task>.<split>.idx). */
  counts: Record<Split, number>;
  /** Source files (or frames/rows) that could not be read and were skipped. */
  skipped: number;
  /** Where the task came from (as given on the command line). */
  source: string;
}

export interface PackShard {
  /** Path relative to the pack folder, e.g. shards/000000.shard. */
  file: string;
  bytes: number;
  /** Images stored in the shard. */
  images: number;
  /** Hex SHA-256 of the shard's bytes. */
  sha256: string;
}

export interface PackManifest {
  format: typeof PACK_FORMAT;
  version: number;
  storage: Storage;
  /** Stored size S: raw images are S x S; JPEG images have their shorter side S. */
  size: number;
  /** How images were resized to the stored size. */
  resize: { method: 'bilinear'; antialias: false; align_corners: false; fit: 'square' | 'shorter-side' };
  /** JPEG quality (jpeg storage only). */
  quality?: number;
  /** Largest shard size in bytes (an image larger than it gets a shard of its own). */
  shardBytes: number;
  /** Seed of the split of unsplit sources, and the fractions given. */
  seed: number;
  split: { val: number; test: number };
  tasks: PackTask[];
  counts: Record<Split, number>;
  skipped: number;
  shards: PackShard[];
  created: string;
}

/** Bytes of one index record: shard u32, offset u32, length u32, height u16, width u16, labels i32 x L. */
export const recordBytes = (labelsPerImage: number): number => 16 + 4 * labelsPerImage;

/** One image's place in the pack (an index record). */
export interface PackRecord {
  shard: number;
  /** Byte offset of the image inside its shard. */
  offset: number;
  length: number;
  /** Stored image size (raw: S x S; JPEG: the encoded size). */
  height: number;
  width: number;
  /** The first label: the class index of a single-label task. */
  label: number;
  /** All label values (length labelsPerImage). */
  labels: Int32Array;
}

/** Writes one record into `view` at byte `at` (little endian). */
export function writeRecord(view: DataView, at: number, r: Omit<PackRecord, 'label'>): void {
  view.setUint32(at, r.shard, true);
  view.setUint32(at + 4, r.offset, true);
  view.setUint32(at + 8, r.length, true);
  view.setUint16(at + 12, r.height, true);
  view.setUint16(at + 14, r.width, true);
  for (let k = 0; k < r.labels.length; k++) view.setInt32(at + 16 + 4 * k, r.labels[k]!, true);
}

/** Reads the record at byte `at` of `view` (labelsPerImage label values). */
export function readRecord(view: DataView, at: number, labelsPerImage: number): PackRecord {
  const labels = new Int32Array(labelsPerImage);
  for (let k = 0; k < labelsPerImage; k++) labels[k] = view.getInt32(at + 16 + 4 * k, true);
  return {
    shard: view.getUint32(at, true),
    offset: view.getUint32(at + 4, true),
    length: view.getUint32(at + 8, true),
    height: view.getUint16(at + 12, true),
    width: view.getUint16(at + 14, true),
    label: labels[0]!,
    labels,
  };
}

/** The index file of task number `task`, split `split`, relative to the pack folder. */
export const indexFile = (task: number, split: Split): string => path.join('index', `${task}.${split}.idx`);
/** The file of shard number `shard`, relative to the pack folder. */
export const shardFile = (shard: number): string => path.join('shards', `${String(shard).padStart(6, '0')}.shard`);

/** Shards must stay addressable by the u32 offsets of the index. */
export const MAX_SHARD_BYTES = 2 ** 32 - 1;
/** Stored sizes fit the u16 height/width of the index. */
export const MAX_STORED_SIDE = 65535;
