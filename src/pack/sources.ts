// The sources of `lorkd pack`, one task each, listed as items in a fixed order without decoding
// any image: an image folder (ImageFolder layout, split or flat: data/images.ts's listing, the
// flat one split by seed with data/image-folder.ts's stratified split), a MedMNIST-format .npz or a
// bundled task name (data/medmnist.ts), or a CSV of `path,label[,split]`. An item is one source
// file (all its frames) or one npz row; its position in the list is its number in the journal.
import path from 'node:path';
import { UserError } from '../tensor/errors.js';
import { type Split, SPLITS } from '../data/dataset.js';
import { listImageFolder } from '../data/images.js';
import { isDirectory, stratifiedRows } from '../data/image-folder.js';
import { type MedMnistStream, medmnistStream } from '../data/medmnist.js';
import { expandTaskList } from '../data/bundled.js';
import { readText } from '../io/read.js';
import type { PackTaskType } from './format.js';

/** One item: a source file (`file`) or row `row` of an in-memory split (npz). */
export interface Item {
  split: Split;
  labels: Int32Array;
  file?: string;
  row?: number;
}

export interface SourceTask {
  name: string;
  classNames: string[];
  task: PackTaskType;
  labelsPerImage: number;
  source: string;
  items: Item[];
  /** An npz source, streamed (its items are rows, read in order: pack.ts's NpzCursor). */
  npz?: MedMnistStream;
}

export interface SplitOptions {
  val: number;
  test: number;
  seed: number;
}

/** Items of a split layout as they are, or of one list split by seed (stratified by the first label). */
function splitItems(all: { file: string; labels: Int32Array }[], splits: Split[] | null, numClasses: number, o: SplitOptions): Item[] {
  if (splits) return all.map((x, i) => ({ split: splits[i]!, labels: x.labels, file: x.file }));
  const parts = stratifiedRows(all.map((x) => x.labels[0]!), numClasses, o.val, o.test, o.seed);
  return SPLITS.flatMap((s) => parts[s].map((r) => ({ split: s, labels: all[r]!.labels, file: all[r]!.file })));
}

function folderTask(dir: string, o: SplitOptions): SourceTask {
  const { classNames, splitLayout, files } = listImageFolder(dir, 'train');
  const all: { file: string; labels: Int32Array }[] = [];
  const splits: Split[] = [];
  for (const s of SPLITS) {
    for (const [file, label] of files.get(s) ?? []) {
      all.push({ file, labels: Int32Array.of(label) });
      splits.push(s);
    }
  }
  if (splitLayout && !files.get('train')?.length) throw new UserError(`${dir}: no training images (train/ is missing or empty)`);
  return {
    name: path.basename(path.resolve(dir)),
    classNames,
    task: classNames.length === 2 ? 'binary-class' : 'multi-class',
    labelsPerImage: 1,
    source: dir,
    items: splitItems(all, splitLayout ? splits : null, classNames.length, o),
  };
}

/** Splits one CSV line (commas; double-quoted fields may hold commas and "" quotes). */
function csvFields(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') (cur += '"'), i++;
      else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') out.push(cur.trim()), (cur = '');
    else cur += ch;
  }
  out.push(cur.trim());
  return out;
}

/**
 * A CSV of `path,label[,split]` (an optional header line naming those columns): paths relative to
 * the CSV's folder; labels are class names (or indices); `a|b` lists several labels, which makes
 * the task multi-label. Without a split column every row is split by seed.
 */
function csvTask(file: string, o: SplitOptions): SourceTask {
  const lines = readText(file, { what: 'CSV' }).split(/\r?\n/).map((l, i) => [l, i + 1] as const).filter(([l]) => l.trim() !== '');
  if (lines.length && /^path$/i.test(csvFields(lines[0]![0])[0] ?? '')) lines.shift();
  if (lines.length === 0) throw new UserError(`${file}: no rows (expected path,label[,split])`);
  const base = path.dirname(file);
  const rows = lines.map(([l, n]) => {
    const f = csvFields(l);
    if (f.length < 2 || f.length > 3 || f[0] === '' || f[1] === '') throw new UserError(`${file}:${n}: expected path,label[,split], got ${JSON.stringify(l)}`);
    const split = f[2];
    if (split !== undefined && !(SPLITS as readonly string[]).includes(split)) throw new UserError(`${file}:${n}: split ${JSON.stringify(split)} is not train, val or test`);
    return { file: path.resolve(base, f[0]!), names: f[1]!.split('|').map((s) => s.trim()), split: split as Split | undefined, line: n };
  });
  const withSplit = rows.filter((r) => r.split !== undefined).length;
  if (withSplit !== 0 && withSplit !== rows.length) throw new UserError(`${file}: ${withSplit} of ${rows.length} rows give a split; give it on every row or on none`);
  const names = [...new Set(rows.flatMap((r) => r.names))];
  const numeric = names.every((n) => /^\d+$/.test(n));
  const classNames = numeric ? Array.from({ length: Math.max(...names.map(Number)) + 1 }, (_, i) => String(i)) : names.sort();
  const multi = rows.some((r) => r.names.length > 1);
  const labelsOf = (r: (typeof rows)[number]): Int32Array => {
    const idx = r.names.map((n) => classNames.indexOf(n));
    if (!multi) return Int32Array.of(idx[0]!);
    const out = new Int32Array(classNames.length);
    for (const i of idx) out[i] = 1;
    return out;
  };
  const all = rows.map((r) => ({ file: r.file, labels: labelsOf(r) }));
  const stratify = multi ? all.map((x) => ({ ...x, labels: Int32Array.of(0) })) : all;
  let items = splitItems(stratify, withSplit ? rows.map((r) => r.split!) : null, multi ? 1 : classNames.length, o);
  if (multi) {
    const byFile = new Map(all.map((x) => [x.file, x.labels]));
    items = items.map((it) => ({ ...it, labels: byFile.get(it.file!)! }));
  }
  return {
    name: path.basename(file).replace(/\.csv$/i, ''),
    classNames,
    task: multi ? 'multi-label' : classNames.length === 2 ? 'binary-class' : 'multi-class',
    labelsPerImage: multi ? classNames.length : 1,
    source: file,
    items,
  };
}

function npzTask(source: string): SourceTask {
  const npz = medmnistStream(source);
  const data = npz.data;
  const items: Item[] = [];
  for (const s of SPLITS) {
    const { labels, n } = data.splits[s];
    for (let row = 0; row < n; row++) items.push({ split: s, labels: labels.subarray(row, row + 1), row });
  }
  return { name: data.name, classNames: data.classNames, task: data.task, labelsPerImage: 1, source, items, npz };
}

/** The tasks of `lorkd pack`'s sources (named suites expanded), each with its items in order. */
export function listSources(sources: readonly string[], o: SplitOptions): SourceTask[] {
  const tasks = expandTaskList(sources).map((s) => (isDirectory(s) ? folderTask(s, o) : /\.csv$/i.test(s) ? csvTask(s, o) : npzTask(s)));
  const twice = tasks.find((t, i) => tasks.findIndex((u) => u.name === t.name) !== i);
  if (twice) throw new UserError(`two sources give the task name '${twice.name}' (task names must differ)`);
  return tasks;
}
