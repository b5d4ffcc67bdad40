// The memory a training run needs, estimated before it starts, and the refusal of a run that
// cannot fit in the machine (os.totalmem or the cgroup limit; LORKD_MEMORY_LIMIT overrides).
// Parameters are counted arithmetically (src/eval/param-count.ts: a decomposition model with
// rank 10000 is never built to be measured); activations are one traced image at
// 32x32, scaled to the input size and batch. Calibrated on this project's machine: a training
// step of resnet18 / shufflenet_v2_x1_0 (channels_last, batch 32-64, input 64-128) peaked at 3.6-3.9x
// its convolution outputs above the weights; the estimate uses 4x. End to end, `lorkd foundation`
// on the bundled data (resnet18, batch 128, input 28) peaked at 893 MiB RSS against an estimate
// of 912 MiB.
import { type BackboneShape, backboneShape, decompositionParams } from '../eval/param-count.js';
import { UserError } from '../tensor/errors.js';
import { SPLITS, type TaskSuite } from '../data/index.js';
import { formatBytes, limit, LIMITS } from '../io/limits.js';

const F32 = 4;
/** Training-step memory per byte of convolution outputs (saved activations, BN/ReLU outputs, gradients). */
const ACTIVATION_FACTOR = 4;
/** Weights, gradients and SGD momentum: three float32 copies of every trainable parameter. */
const TRAINABLE_COPIES = 3;
/**
 * Node, libtorch and the allocator's caches: a lorkd process that fails at once peaks at 250 MiB;
 * a training run keeps about 350 MiB more in caches (measured below).
 */
const BASELINE = 600 * 2 ** 20;
/** A checkpoint write serialises weights and momentum once more (two float32 copies). */
const CHECKPOINT_COPIES = 2;

export interface MemoryEstimate {
  bytes: number;
  /** The parts, for the message: name -> bytes. */
  parts: Record<string, number>;
}

/** Activation memory of a training step at this batch and input side. */
function activations(shape: BackboneShape, batch: number, input: number): number {
  return ACTIVATION_FACTOR * F32 * shape.convOutputs32 * (input / 32) ** 2 * batch;
}

export interface RunShape {
  batch: number;
  input: number;
  /** Bytes of the loaded images (all splits of all tasks). */
  dataBytes: number;
}

/** A foundation run: the model trained with SGD, at the batch and input size. */
export function estimateFoundation(o: RunShape & { arch: string; classes: number }): MemoryEstimate {
  const s = backboneShape(o.arch);
  const params = s.params + (o.classes - 2) * (s.numFeatures + 1);
  return total({
    'model and optimiser state': TRAINABLE_COPIES * F32 * params,
    'checkpoint writes': CHECKPOINT_COPIES * F32 * params,
    [`activations at batch ${o.batch} and input ${o.input}`]: activations(s, o.batch, o.input),
    'images': o.dataBytes,
  });
}

/** A decomposition run: backbone + T experts + heads (SGD), the teacher cache, activations. */
export function estimateDecomposition(o: RunShape & { model: string; classes: number[]; rank: number; trainImages: number; teacher?: { arch: string; classes: number } }): MemoryEstimate {
  const s = backboneShape(o.model);
  const params = decompositionParams(s, o.classes, o.rank);
  const parts: Record<string, number> = {
    [`model with ${o.classes.length} rank-${o.rank} experts and optimiser state`]: TRAINABLE_COPIES * F32 * params,
    'checkpoint writes': CHECKPOINT_COPIES * F32 * params,
    // The expert paths (per-sample low-rank intermediates), the EKS strategy trials and the
    // teacher pass: 3.5x a plain step, from `lorkd decompose` on the bundled data (shufflenet_v2_x1_0,
    // batch 128, input 64, feature KD): 1776 MiB peak RSS, estimated 1736 MiB.
    [`activations at batch ${o.batch} and input ${o.input}`]: 3.5 * activations(s, o.batch, o.input),
    'images': o.dataBytes,
  };
  if (o.teacher) {
    const t = backboneShape(o.teacher.arch);
    parts['teacher cache'] = 2 * o.trainImages * (t.numFeatures + o.teacher.classes) * F32;
  }
  return total(parts);
}

/** Bytes of a suite's loaded images (every split of every task). */
export function suiteBytes(suite: TaskSuite): number {
  return suite.tasks.reduce((a, t) => a + SPLITS.reduce((b, s) => b + t.data.splits[s].images.length, 0), 0);
}

function total(parts: Record<string, number>): MemoryEstimate {
  const all = { ...parts, 'runtime': BASELINE };
  return { bytes: Object.values(all).reduce((a, b) => a + b, 0), parts: all };
}

/** Refuses a run whose estimate exceeds the machine's memory (LORKD_MEMORY_LIMIT overrides it). */
export function checkMemory(e: MemoryEstimate, what: string): void {
  const have = limit('memory');
  if (e.bytes <= have) return;
  const biggest = Object.entries(e.parts).sort((a, b) => b[1] - a[1]).slice(0, 2).map(([k, v]) => `${k} ${formatBytes(v)}`).join(', ');
  throw new UserError(
    `${what} needs about ${formatBytes(e.bytes)} of memory (${biggest}), more than the ${formatBytes(have)} this machine has; lower --batch, --input or --rank (or set ${LIMITS.memory.env} to override)`,
  );
}

/** The parts of an estimate that stay on the host when a run is on a GPU: the loaded images and the runtime. */
const HOST_PARTS = new Set(['images', 'runtime']);

/**
 * A run on a GPU: the host keeps the images and the runtime, the GPU the rest (model, optimiser
 * state, activations, checkpoint copies). Each must fit its own memory (`gpuBytes`: the GPU's total,
 * null when unknown: then only the host is checked).
 */
export function checkMemoryOn(e: MemoryEstimate, what: string, gpuBytes: number | null): void {
  const host = Object.fromEntries(Object.entries(e.parts).filter(([k]) => HOST_PARTS.has(k)));
  const gpu = Object.fromEntries(Object.entries(e.parts).filter(([k]) => !HOST_PARTS.has(k)));
  const sum = (p: Record<string, number>) => Object.values(p).reduce((a, b) => a + b, 0);
  checkMemory({ bytes: sum(host), parts: host }, what);
  if (gpuBytes === null || sum(gpu) <= gpuBytes) return;
  const biggest = Object.entries(gpu).sort((a, b) => b[1] - a[1]).slice(0, 2).map(([k, v]) => `${k} ${formatBytes(v)}`).join(', ');
  throw new UserError(`${what} needs about ${formatBytes(sum(gpu))} of GPU memory (${biggest}), more than the GPU's ${formatBytes(gpuBytes)}; lower --batch, --input or --rank`);
}
