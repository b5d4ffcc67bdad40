// The frozen teacher's outputs for every training image, computed once and cached in the run
// directory, so later epochs never run the teacher. Both views of each image (as is, and
// horizontally flipped) are cached, so the random flip is handled exactly. The cache file is
// keyed by a hash of the teacher weights, the training images and the teacher's transform (the
// foundation model's own input size and normalisation, which may differ from the student's).
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync } from 'node:fs';
import { readRegular } from '../io/read.js';
import path from 'node:path';
import type { ImageClassifier } from '../models/classifier.js';
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
  /** (2N, F): row i is view 0 of train sample i, row N + i its flipped view. */
  features: Tensor;
  /** (2N, C): unified-head logits, same rows. */
  logits: Tensor;
  n: number;
  file: string;
}

export function cacheKey(teacherFile: string, loader: DataLoader, transform: TransformOptions): string {
  const h = createHash('sha256');
  h.update(readRegular(teacherFile));
  const s = loader.split;
  for (const src of s.sources) h.update(src);
  h.update(JSON.stringify({ n: s.n, size: transform.size ?? null, mean: transform.mean ?? null, std: transform.std ?? null, tasks: s.taskSizes }));
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

/** Returns the cached teacher outputs, computing them (progress shown) when not cached yet. */
export function teacherOutputs(
  teacher: ImageClassifier,
  teacherFile: string,
  loader: DataLoader,
  transform: TransformOptions,
  run: RunDir,
  progress: Progress,
  channelsLast = true,
  share: CacheShare | null = null,
): TeacherCache {
  const key = cacheKey(teacherFile, loader, transform);
  const name = `teacher-cache-${key}.safetensors`;
  if (!run.has(name)) shareFromRank0(name, run, progress, share);
  if (run.has(name)) {
    const { tensors } = loadSafetensors(run.file(name));
    progress.log(`[decompose] teacher outputs from cache ${name}`);
    return { features: keep(tensors.get('features')!), logits: keep(tensors.get('logits')!), n: loader.split.n, file: run.file(name) };
  }
  teacher.eval();
  const n = loader.split.n;
  const bs = 256;
  const feats: Tensor[] = [];
  const logits: Tensor[] = [];
  progress.start('[decompose] teacher outputs (cached once)', 2 * Math.ceil(n / bs));
  let done = 0;
  for (const flip of [0, 1]) {
    for (let s = 0; s < n; s += bs) {
      const idx = Int32Array.from({ length: Math.min(bs, n - s) }, (_, i) => s + i);
      const b = makeBatch(loader.split, idx, new Uint8Array(idx.length).fill(flip), transform);
      try {
        const [f, l] = noGrad(() =>
          tidy(() => {
            const x = channelsLast ? b.images.contiguous('channels_last') : b.images;
            const f = teacher.forwardFeatures(x);
            return [f, teacher.forwardHead(f)] as const;
          }),
        );
        feats.push(keep(f));
        logits.push(keep(l));
      } finally {
        b.dispose();
      }
      progress.update(++done, {});
    }
  }
  progress.stop();
  const features = keep(cat(feats, 0));
  const allLogits = keep(cat(logits, 0));
  feats.concat(logits).forEach((t) => t.dispose());
  saveSafetensors(run.file(name), { features, logits: allLogits }, { lorkd_format: 'teacher-cache', key });
  return { features, logits: allLogits, n, file: run.file(name) };
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
