// `auto` strategy: measures the candidate EKS strategies once per input shape (forward, plus
// backward in training mode) on the real model and caches the fastest. Every candidate runs on
// CUDA too (the fused op is ATen calls only), so the same choice is made there. The measurement leaves
// the model as it found it: BatchNorm statistics are restored and gradients untouched.
import { performance } from 'node:perf_hooks';
import { type Tensor, tidy, noGrad, synchronize } from '../tensor/index.js';
import type { Routing } from './routing.js';
import type { Strategy } from './strategies.js';
import type { DecompositionModel } from './decomposition.js';

/** Strategies `auto` chooses among. `aggregated` (the paper's, 13-17x slower) is a reference only. */
export const AUTO_CANDIDATES: Strategy[] = ['fused', 'routed', 'gathered', 'loop'];
/** Another candidate replaces fused only when its measured time is below fused's / AUTO_MARGIN. */
export const AUTO_MARGIN = 1.25;

export interface AutoMeasurement {
  key: string;
  ms: Record<string, number>;
  best: Strategy;
}

export class AutoStrategy {
  readonly #cache = new Map<string, AutoMeasurement>();
  constructor(private readonly model: DecompositionModel) {}

  get measurements(): AutoMeasurement[] {
    return [...this.#cache.values()];
  }

  /** Forgets every choice (the tasks changed: the timings no longer hold). */
  reset(): void {
    this.#cache.clear();
  }

  /** Fixes the choice for a key (e.g. restored from a checkpoint, so a resumed run matches). */
  set(key: string, best: Strategy): void {
    this.#cache.set(key, { key, ms: {}, best });
  }

  static key(x: Tensor, training: boolean): string {
    return `${x.shape.join('x')}:${x.isContiguous('channels_last') && !x.isContiguous() ? 'cl' : 'nchw'}:${training ? 'train' : 'eval'}`;
  }

  pick(x: Tensor, routing: Routing, training: boolean): Strategy {
    const key = AutoStrategy.key(x, training);
    const hit = this.#cache.get(key);
    if (hit) return hit.best;
    const m = this.model;
    const buffers = m.namedBuffers().map(([, b]) => [b, b.clone()] as const);
    const params = m.parameters();
    const grads = params.map((p) => p.grad);
    for (const p of params) p.grad = null;
    const ms: Record<string, number> = {};
    try {
      for (const s of AUTO_CANDIDATES) {
        const once = () =>
          tidy(() => {
            if (training) m.featuresSorted(x, routing, s).sum().backward();
            else noGrad(() => m.featuresSorted(x, routing, s));
          });
        once(); // warm-up (allocator, oneDNN primitives)
        // The fastest of three runs: a single timing on a shared machine picked wrong ones.
        // On CUDA the kernels run asynchronously: each timing waits for the device.
        let best = Infinity;
        for (let i = 0; i < 3; i++) {
          synchronize(x.device);
          const t0 = performance.now();
          once();
          synchronize(x.device);
          best = Math.min(best, performance.now() - t0);
        }
        ms[s] = best;
        for (const p of params) p.grad = null;
      }
    } finally {
      noGrad(() => buffers.forEach(([b, saved]) => (b.copy_(saved), saved.dispose())));
      params.forEach((p, i) => (p.grad = grads[i] ?? null));
      grads.forEach((g) => g?.dispose());
    }
    // fused (the native op) stays unless another candidate is clearly faster: the timings of a few
    // runs are noisy on a shared machine, and in `lorkd bench decompose` a narrow win of loop or
    // gathered in the measurement (within ~10%) became a 2-2.6x slower training step.
    const fastest = AUTO_CANDIDATES.reduce((a, b) => (ms[b]! < ms[a]! ? b : a));
    const best = ms[fastest]! * AUTO_MARGIN < ms.fused! ? fastest : 'fused';
    this.#cache.set(key, { key, ms, best });
    return best;
  }
}
