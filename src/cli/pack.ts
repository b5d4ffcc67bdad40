// lorkd pack: sources (image folders, MedMNIST .npz, CSVs) -> a pack of shards, an index and a
// manifest (docs/PACK.md); --verify checks a pack's shards against their checksums.
import type { Command } from 'commander';
import { UserError } from '../tensor/errors.js';
import { type PackManifest, STORAGES, type Storage, openPack, packSources, packSummary, DEFAULT_SHARD_BYTES } from '../pack/index.js';
import { createProgress } from '../experiments/progress.js';
import { emit, intOption, numberOption, run } from './output.js';
import { peakRssMb } from '../io/peak-rss.js';

/** "val=0.1,test=0.2" -> fractions (either may be left out: defaults 0.1 and 0.2). */
export function parseSplit(v: string): { val: number; test: number } {
  const out = { val: 0.1, test: 0.2 };
  for (const part of v.split(',')) {
    const m = /^\s*(val|test)\s*=\s*([0-9.eE+-]+)\s*$/.exec(part);
    const x = m ? Number(m[2]) : NaN;
    if (!m || !(Number.isFinite(x) && x >= 0 && x < 1)) throw new UserError(`--split must look like val=0.1,test=0.2 (fractions in [0, 1)), got "${v}"`);
    out[m[1] as 'val' | 'test'] = x;
  }
  if (out.val + out.test >= 1) throw new UserError(`--split: val + test must be below 1, got ${out.val} + ${out.test}`);
  return out;
}

export function registerPack(program: Command): void {
  program
    .command('pack')
    .description('pack image folders, MedMNIST .npz files or CSVs (one task each) into shards with an index and a manifest, to train from disk (docs/PACK.md)')
    .argument('[sources...]', 'image folders (train/ val/ test/ class folders, or class folders split by --seed), .npz files or bundled task names, CSVs of path,label[,split]')
    .option('--out <dir>', 'the pack folder (an unfinished pack there is continued)')
    .option('--size <S>', 'stored size: raw S x S, jpeg with the shorter side S', intOption('size', 1), 64)
    .option('--format <f>', 'raw (uint8 pixels) or jpeg', 'raw')
    .option('--quality <Q>', 'JPEG quality', intOption('quality', 1), 90)
    .option('--split <spec>', 'val and test fractions for sources without splits', 'val=0.1,test=0.2')
    .option('--seed <n>', 'seed of that split', intOption('seed'), 0)
    .option('--shard-mib <M>', 'largest shard, MiB', numberOption('shard-mib'), DEFAULT_SHARD_BYTES / 2 ** 20)
    .option('--threads <n>', 'decode threads (default: every core)', intOption('threads', 1))
    .option('--verify <dir>', 'check the shards of the pack in DIR against their SHA-256 (nothing is packed)')
    .option('--json', 'print one JSON object (the manifest and the timing)')
    .action((sources: string[], o) =>
      run(async () => {
        const progress = createProgress();
        if (o.verify !== undefined) {
          const pack = openPack(String(o.verify));
          progress.start('verify', pack.manifest.shards.length);
          await pack.verify((done) => progress.update(done, {}));
          pack.close();
          progress.stop();
          emit(!!o.json, { ok: true, shards: pack.manifest.shards.length }, () => `${o.verify}: ${pack.manifest.shards.length} shards verified`);
          return;
        }
        if (!sources.length) throw new UserError('lorkd pack: give at least one source (or --verify DIR)');
        if (o.out === undefined) throw new UserError('lorkd pack: --out DIR is required');
        if (!STORAGES.includes(o.format)) throw new UserError(`--format must be raw or jpeg, got "${o.format}"`);
        const split = parseSplit(String(o.split));
        let started = false;
        const r = await packSources(sources, {
          out: String(o.out), storage: o.format as Storage, size: o.size, quality: o.quality, ...split, seed: o.seed,
          shardBytes: Math.max(1, Math.round(o.shardMib * 2 ** 20)), ...(o.threads ? { threads: o.threads } : {}),
          onStart: (at, total) => {
            if (at) progress.log(`continuing the pack in ${o.out} at item ${at} of ${total}`);
            progress.start('pack', total);
            started = true;
          },
          onProgress: (done, _total, images) => progress.update(done, { images }),
          onSkip: (line) => progress.log(`skipped: ${line}`),
        });
        if (started) progress.stop();
        const m = r.manifest as PackManifest;
        emit(!!o.json, { manifest: m, seconds: r.seconds, images: r.images, img_per_s: r.images / Math.max(r.seconds, 1e-3), resumed_at: r.resumedAt, max_rss_mb: peakRssMb() }, () => packSummary(m, r));
      }),
    );
}
