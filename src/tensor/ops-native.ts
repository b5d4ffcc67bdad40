// The native op table with every libtorch exception turned into a TorchError.
import { native, type Native } from './native.js';
import { TorchError } from './errors.js';

function guarded(): Native {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(native)) {
    if (name === 'NativeTensor' || typeof fn !== 'function') {
      out[name] = fn;
      continue;
    }
    const f = fn as (...a: unknown[]) => unknown;
    out[name] = (...args: unknown[]) => {
      try {
        return f(...args);
      } catch (e) {
        throw new TorchError((e as Error).message);
      }
    };
  }
  return out as Native;
}

/** The binding, every call guarded. */
export const N: Native = guarded();
