// Loads the libtorch binding built by ./bootstrap.sh (node-gyp, native/build/Release).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import os from 'node:os';

/** The opaque native handle of one libtorch tensor. */
export interface NativeHandle {
  readonly __native: unique symbol;
}

// The binding's surface is uniform (one wrapper per libtorch op); it is typed loosely here and
// strongly in Tensor and the functional API above it.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Native = Record<string, (...args: any[]) => any> & { NativeTensor: Function };

function findAddon(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // src/tensor -> repo root, whether running from dist/src/tensor or src/tensor
  for (const up of ['../..', '../../..']) {
    const p = path.resolve(here, up, 'native/build/Release/lorkd_native.node');
    if (existsSync(p)) return p;
  }
  throw new Error('lorkd native addon is not built: run ./bootstrap.sh (it installs libtorch and builds native/)');
}

// OpenBLAS (behind libtorch's mm/addmm) must not start its own thread pool next to libtorch's
// OpenMP threads: its spinning threads made the many small GEMMs of the EKS convolution 2x slower.
// It is read when libopenblas loads with the addon; a user's own setting wins.
process.env.OPENBLAS_NUM_THREADS ??= '1';

const require = createRequire(import.meta.url);
export const native: Native = require(findAddon());

// libtorch defaults to one intra-op thread on this platform; use every core unless told otherwise.
const envThreads = Number(process.env.LORKD_NUM_THREADS ?? '');
native.setNumThreads(Number.isInteger(envThreads) && envThreads > 0 ? envThreads : os.availableParallelism());
