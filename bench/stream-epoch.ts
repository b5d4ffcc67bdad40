// Streams one training epoch from a pack in a child process and prints its peak RSS
// (bench/data.ts, test/data-pack-memory.test.ts): `node stream-epoch.js DIR INPUT BATCH`. Without
// arguments it does nothing.
import { fileURLToPath } from 'node:url';
import { setNumThreads } from '../src/tensor/index.js';
import { loadSuite, trainLoader } from '../src/experiments/data-options.js';
import { peakRssMb } from '../src/io/peak-rss.js';

/** Streams epoch 0 of the pack in `dir`; returns the images seen. */
export function streamEpoch(dir: string, input: number, batch: number): number {
  const o = { tasks: [dir], input, batch, seed: 0 };
  const loader = trainLoader(loadSuite(o), o);
  let seen = 0;
  for (const b of loader.epoch(0)) {
    seen += b.size;
    b.dispose();
  }
  return seen;
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] !== undefined) {
  setNumThreads(1);
  const t0 = performance.now();
  const seen = streamEpoch(process.argv[2], Number(process.argv[3] ?? 32), Number(process.argv[4] ?? 64));
  const seconds = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ seen, seconds, maxRssMb: peakRssMb() }));
  process.exit(0);
}
