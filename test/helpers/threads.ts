// Run fn with libtorch's intra-op thread count set to n, restoring the count after.
import { setNumThreads, getNumThreads } from '../../src/tensor/index.js';

export function withThreads(n: number, fn: () => void): void {
  const before = getNumThreads();
  setNumThreads(n);
  try {
    fn();
  } finally {
    setNumThreads(before);
  }
}
