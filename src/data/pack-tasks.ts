// Writing tasks already in memory (TaskData) into a pack (docs/PACK.md), with the pack format's
// writer: the equality tests and `lorkd bench data` pack the bundled tasks this way. Each task's
// rows are stored at their size (raw), or as JPEGs (square images: the shorter side is the side).
import { PackWriter, encodeStored, type PackManifest, type Storage } from '../pack/index.js';
import { type Split, SPLITS, type TaskData } from './dataset.js';
import { UserError } from '../tensor/errors.js';

export interface PackTasksOptions {
  storage: Storage;
  quality?: number;
  shardBytes?: number;
  /** Called after every image with the count written so far. */
  onImage?: (done: number) => void;
}

/** Packs `tasks` (all of one stored size) into `dir`; returns the manifest. */
export async function packTasks(dir: string, tasks: readonly TaskData[], o: PackTasksOptions): Promise<PackManifest> {
  const size = tasks[0]!.splits.train.height;
  for (const t of tasks) {
    for (const s of SPLITS) {
      const p = t.splits[s];
      if (p.n > 0 && (p.height !== size || p.width !== size)) throw new UserError(`task '${t.name}' is ${p.height}x${p.width}; a pack holds one size (${size}x${size})`);
    }
  }
  const w = PackWriter.open(dir, `tasks:${tasks.map((t) => t.name).join(',')}:${o.storage}:${o.quality ?? 90}`, tasks.map(() => ({ labelsPerImage: 1 })), o.shardBytes ?? 256 * 2 ** 20);
  let item = 0;
  const per = 3 * size * size;
  for (let t = 0; t < tasks.length; t++) {
    for (const s of SPLITS as readonly Split[]) {
      const p = tasks[t]!.splits[s];
      for (let i = 0; i < p.n; i++, item++) {
        if (item < w.resumeAt) continue;
        const data = p.images.subarray(i * per, (i + 1) * per);
        const hw = size * size;
        const grey = tasks[t]!.sourceChannels === 1;
        const img = { height: size, width: size, data, grey: grey && data.subarray(0, hw).every((v, k) => v === data[hw + k] && v === data[2 * hw + k]) };
        w.add(t, s, Int32Array.of(p.labels[i]!), [{ bytes: await encodeStored(img, o.storage, o.quality ?? 90), height: size, width: size, grey: img.grey }], item + 1);
        o.onImage?.(item + 1);
      }
    }
  }
  w.advance(item);
  return w.finish({
    format: 'lorkd-pack', version: 1, storage: o.storage, size,
    resize: { method: 'bilinear', antialias: false, align_corners: false, fit: o.storage === 'raw' ? 'square' : 'shorter-side' },
    ...(o.storage === 'jpeg' ? { quality: o.quality ?? 90 } : {}),
    seed: 0, split: { val: 0, test: 0 }, created: new Date().toISOString(),
    tasks: tasks.map((t) => ({ name: t.name, classNames: t.classNames.slice(), task: t.task, labelsPerImage: 1, source: (t as { file?: string }).file ?? t.name })),
  });
}
