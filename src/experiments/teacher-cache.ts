// The frozen teacher's outputs for every training image, computed once and cached in the run
// directory, so later epochs never run the teacher (any teacher: teacher/teacher.ts). Both views of each image (as is, and
// horizontally flipped) are cached, so the random flip is handled exactly. The cache file is
// keyed by a hash of the teacher file, the training images, the teacher's transform (its own input
// size and normalisation, which may differ from the student's) and, for an ONNX teacher, the
// outputs chosen. Only the outputs the teacher gives are cached.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync } from 'node:fs';
import { readRegular } from '../io/read.js';
import path from 'node:path';
import type { Teacher } from './teacher/index.js';
import { type DataLoader, type TransformOptions, makeBatch } from '../data/index.js';
import { type Tensor, cat, keep, noGrad, tidy } from '../tensor/index.js';
import { saveSafetensors, loadSafetensors } from '../io/safetensors.js';
import type { RunDir } from './run-dir.js';
import type { Progress } from './progress.js';
import { UserError } from '../tensor/errors.js';
import type { ProcessGroup } from '../dist/index.js';

/** Data parallelism: ranks > 0 copy rank 0's cache from the run directory the user sees. */
export interface CacheShare {
  group: ProcessGroup;
  /** Rank 0's run directory (ranks > 0 write to a private scratch folder). */
  sharedOut: string;
}

export interface TeacherCache {
  /** (2N, F): row i is view 0 of train sample i, row N + i its flipped view (null: the teacher gives none). */
  features: Tensor | null;
  /** (2N, C): unified-head logits, same rows (null: the teacher gives none). */
  logits: Tensor | null;
  n: number;
  file: string;
}

export function cacheKey(teacherFile: string, loader: DataLoader, transform: TransformOptions, tag = ''): string {
  const h = createHash('sha256');
  h.update(readRegular(teacherFile));
  const s = loader.split;
  for (const src of s.sources) h.update(src);
  h.update(JSON.stringify({ n: s.n, size: transform.size ?? null, mean: transform.mean ?? null, std: transform.std ?? null, tasks: s.taskSizes }));
  if (tag) h.update(tag);
  return h.digest('hex').slice(0, 16);
}

/**
 * Data parallelism: rank 0 computes the teacher outputs into the run directory; the other ranks
 * (whose own run directory is private, src/cli/distributed.ts) wait for that file, written
 * atomically, and copy it, so the teacher runs once per run, not once per rank.
 */
function shareFromRank0(name: string, run: RunDir, progress: Progress, share: CacheShare | null): void {
  if (!share || share.group.rank === 0) return;
  const group = share.group;
  const from = path.join(share.sharedOut, name);
  const limitMs = Math.max(3600, group.env.timeoutS * 30) * 1000;
  const t0 = Date.now();
  if (!existsSync(from)) progress.log(`[decompose] rank ${group.rank}: waiting for rank 0's teacher outputs (${name})`);
  const sleep = new Int32Array(new SharedArrayBuffer(4));
  while (!existsSync(from)) {
    if (Date.now() - t0 > limitMs) throw new UserError(`rank ${group.rank}: rank 0 did not write ${from} within ${Math.round(limitMs / 1000)} s`);
    Atomics.wait(sleep, 0, 0, 500);
  }
  copyFileSync(from, run.file(name));
}

/** The teacher's transform: its own input size and normalisation, batches made where it runs. */
export function teacherTransform(teacher: Teacher): TransformOptions {
  const p = teacher.preprocessing;
  return { size: p.input, mean: p.mean, std: p.std, device: teacher.device };
}

/** Returns the cached teacher outputs, computing them (progress shown) when not cached yet. */
export async function teacherOutputs(teacher: Teacher, loader: DataLoader, run: RunDir, progress: Progress, share: CacheShare | null = null): Promise<TeacherCache> {
  const transform = teacherTransform(teacher);
  const key = cacheKey(teacher.file, loader, transform, teacher.cacheTag);
  const name = `teacher-cache-${key}.safetensors`;
  if (!run.has(name)) shareFromRank0(name, run, progress, share);
  if (run.has(name)) {
    const { tensors } = loadSafetensors(run.file(name));
    progress.log(`[decompose] teacher outputs from cache ${name}`);
    const get = (k: string): Tensor | null => (tensors.has(k) ? keep(tensors.get(k)!) : null);
    return { features: get('features'), logits: get('logits'), n: loader.split.n, file: run.file(name) };
  }
  const n = loader.split.n;
  const bs = teacher.batchSize;
  const parts: Record<'features' | 'logits', Tensor[]> = { features: [], logits: [] };
  progress.start(`[decompose] teacher outputs of ${teacher.file} (cached once)`, 2 * Math.ceil(n / bs));
  let done = 0;
  try {
    for (const flip of [0, 1]) {
      for (let s = 0; s < n; s += bs) {
        const idx = Int32Array.from({ length: Math.min(bs, n - s) }, (_, i) => s + i);
        const b = makeBatch(loader.split, idx, new Uint8Array(idx.length).fill(flip), transform);
        try {
          const out = await teacher.forward(b.images);
          for (const k of ['features', 'logits'] as const) if (out[k]) parts[k].push(keep(out[k]));
        } finally {
          b.dispose();
        }
        progress.update(++done, {});
      }
    }
  } catch (e) {
    for (const t of [...parts.features, ...parts.logits]) t.dispose();
    throw e;
  } finally {
    progress.stop();
  }
  const joined = (k: 'features' | 'logits'): Tensor | null => (parts[k].length ? keep(cat(parts[k], 0)) : null);
  const features = joined('features');
  const logits = joined('logits');
  for (const t of [...parts.features, ...parts.logits]) t.dispose();
  saveSafetensors(run.file(name), { ...(features ? { features } : {}), ...(logits ? { logits } : {}) }, { lorkd_format: 'teacher-cache', key });
  return { features, logits, n, file: run.file(name) };
}

/**
 * Teacher features, standardised per dimension over the training set, before the trainable
 * projection. A trained foundation's pooled (post-ReLU) features reach ~200; the KL gradient
 * through the projection is scaled by beta * alpha^2 = 100, and with raw features SGD at lr 0.05
 * diverged within a few steps (measured). Standardising conditions the projection's input and
 * leaves the method (KL between temperature softmaxes of projected teacher and student features)
 * as it is.
 */
export function standardise(features: Tensor): Tensor {
  const out = noGrad(() => tidy(() => features.sub(features.mean(0, true)).div(features.var(0, 0, true).add(1e-5).sqrt())));
  features.dispose();
  return keep(out);
}
