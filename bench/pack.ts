// Packing speed of `lorkd pack` (src/pack/bench.ts): a generated tree of 224 px JPEGs (random crops
// of the bundled bloodpbc images) packed as jpeg 224 and as raw 64, in images per second, with the
// load average before and after. `lorkd bench data` (training from a pack) reports the same figure.
//   node dist/bench/pack.js [--n 2000] [--json]
import { benchPack, makeJpegTree } from '../src/pack/bench.js';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { machineLine, watchMachine } from './machine.js';

const arg = (name: string, d: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const n = arg('n', 2000);
const watch = watchMachine();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'lorkd-bench-pack-tree-'));
try {
  const tree = await makeJpegTree(path.join(tmp, 'tree'), { n });
  const rows = [await benchPack({ source: tree, storage: 'jpeg', size: 224 }), await benchPack({ source: tree, storage: 'raw', size: 64 })];
  const machine = watch.stop();
  if (process.argv.includes('--json')) console.log(JSON.stringify({ rows, machine }));
  else for (const r of rows) console.log(`${r.storage} ${r.size}: ${r.images} images in ${r.seconds.toFixed(1)} s, ${r.pack_img_per_s.toFixed(0)} img/s (${r.threads} threads; load ${r.loadavg_before.toFixed(1)} -> ${r.loadavg_after.toFixed(1)})`);
  if (!process.argv.includes('--json')) console.log(machineLine(machine));
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
