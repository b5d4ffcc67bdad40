// A pack (docs/PACK.md) as tasks of a suite: `--tasks pack:DIR`, or the pack's folder itself. Each
// task of the pack becomes a TaskData whose splits hold labels only; their rows are streamed from
// the shards (stream.ts). A raw pack's rows keep the stored size (batches are resized to the
// command's input where they are made, as for in-memory tasks); a JPEG pack's rows are cropped and
// resized to `input` by the stream worker (RandomResizedCrop in training, the centre otherwise).
import path from 'node:path';
import { statSync } from 'node:fs';
import { UserError } from '../tensor/errors.js';
import { isPack, openPack } from '../pack/index.js';
import { type ImageSplit, type Split, SPLITS, type TaskData } from './dataset.js';

/** The pack folder a `--tasks` entry names (`pack:DIR`, or a folder holding a manifest.json), else null. */
export function packSource(source: string): string | null {
  if (source.startsWith('pack:')) return source.slice(5);
  try {
    return statSync(source).isDirectory() && isPack(source) ? source : null;
  } catch {
    return null;
  }
}

/** Every task of the pack in `dir`; a JPEG pack's rows are delivered at `input` x `input` (default: its stored size). */
export function loadPackTasks(dir: string, o: { input?: number } = {}): TaskData[] {
  const pack = openPack(dir);
  const m = pack.manifest;
  const abs = path.resolve(dir);
  const out = m.storage === 'raw' ? m.size : (o.input ?? m.size);
  return m.tasks.map((t, task) => {
    if (t.task === 'multi-label') throw new UserError(`${dir}: task '${t.name}' is multi-label; lorkd trains single-label classification tasks`);
    const split = (s: Split): ImageSplit => ({
      n: t.counts[s], channels: 3, height: out, width: out, images: new Uint8Array(0), labels: pack.labels(task, s),
      pack: { dir: abs, task, split: s, storage: m.storage, out },
    });
    return {
      name: t.name, classNames: t.classNames.slice(), task: t.task, sourceChannels: t.channels,
      splits: Object.fromEntries(SPLITS.map((s) => [s, split(s)])) as Record<Split, ImageSplit>, file: dir,
    } as TaskData;
  });
}
