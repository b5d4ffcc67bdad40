// libtorch's inference mode (c10::InferenceMode, torch.inference_mode): no autograd record at
// all, not even the version counters and views' bookkeeping that no-grad still keeps. Tensors
// made inside are inference tensors: fine to read anywhere, never to save for a backward, so
// only code that deploys or evaluates a network runs in it (src/infer), never training code.
import { N } from './ops-native.js';

/** Runs fn in libtorch's inference mode (scopes nest; the previous mode comes back after). */
export function inferenceMode<R>(fn: () => R): R {
  N.inferenceModeEnter();
  try {
    return fn();
  } finally {
    N.inferenceModeExit();
  }
}

/** True inside inferenceMode. */
export const isInferenceMode = (): boolean => N.isInferenceMode();
