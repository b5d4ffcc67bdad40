// The direct convolution of the ResNet trunk (native/src/direct-conv.cc): a convolution loop of
// lorkd's own on channels_last tensors, with the residual sum and the ReLU in the store, for the
// stages whose output is small, where the CPU has AVX-512. The other stages run oneDNN's blocked
// chain (InferenceResNetTrunk).
import { N } from '../tensor/ops-native.js';
import { UserError } from '../tensor/errors.js';

export interface DirectConvSettings {
  /** Whether the loop runs at all (false on a CPU without AVX-512, whatever is set). */
  enabled: boolean;
  /** Most multiply-adds of the largest convolution of a trunk stage that takes the loop (default 2^24: ResNet-18 at 64 px, batch 1). */
  maxMacs: number;
}

/**
 * Sets what is given and returns the settings in force before the call, so that a caller can put
 * them back: `const before = directConv({ enabled: false }); ...; directConv(before)`. Tests and
 * `lorkd bench infer` compare the loop with oneDNN's chain. A trunk prepared while the loop was
 * off keeps oneDNN's chain.
 */
export function directConv(set: Partial<DirectConvSettings> = {}): DirectConvSettings {
  if (set.enabled !== undefined && typeof set.enabled !== 'boolean') throw new UserError(`directConv: enabled must be true or false, got ${String(set.enabled)}`);
  const m = set.maxMacs;
  if (m !== undefined && !(typeof m === 'number' && m >= 0 && (Number.isInteger(m) || m === Infinity))) {
    throw new UserError(`directConv: maxMacs must be a whole number >= 0, got ${String(m)}`);
  }
  const [enabled, maxMacs] = N.directConvSwitch(set.enabled, m === Infinity ? Number.MAX_SAFE_INTEGER : m) as [boolean, number];
  return { enabled, maxMacs: maxMacs >= Number.MAX_SAFE_INTEGER ? Infinity : maxMacs };
}

/** The convolutions run through the direct loop since the library was loaded. */
export function directConvRuns(): number {
  return N.directConvRuns() as number;
}
