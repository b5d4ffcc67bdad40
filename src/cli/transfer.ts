// lorkd transfer: fine-tune a deployed network (or the shared backbone, or scratch) on a downstream set.
import type { CliRuntime } from './distributed.js';
import type { Command } from 'commander';
import { UserError } from '../tensor/errors.js';
import { resolveSource } from '../experiments/transfer-source.js';
import { runTransfer, TRANSFER_DEFAULTS, type TransferResult } from '../experiments/transfer.js';
import { progressOf, deviceOptions, runtimeOf } from './common.js';
import { emit, intOption, numberOption, run, table } from './output.js';

/** A comma list of non-negative integer seeds. */
export function seedsOption(v: string): number[] {
  const seeds = v.split(',').map((s) => s.trim());
  if (seeds.some((s) => !/^[0-9]+$/.test(s))) throw new UserError(`--seeds must be a comma list of non-negative integers, got "${v}"`);
  return seeds.map(Number);
}

const pct = (x: number): string => (Number.isFinite(x) ? (100 * x).toFixed(1) : 'n/a');

/** The human form of a transfer result. */
export function transferTable(r: TransferResult): string {
  const ci = (i: TransferResult['accuracy']) => (i.ci95 ? ` [${pct(i.ci95[0])}, ${pct(i.ci95[1])}]` : '');
  const rows = r.runs.map((x) => [String(x.seed), pct(x.accuracy), Number.isFinite(x.auc) ? x.auc.toFixed(3) : 'n/a', x.n_train, x.seconds.toFixed(1)]);
  return [
    `${r.source.kind}${r.source.file ? ` ${r.source.file}` : ''} (${r.source.model}, ${r.source.input_size}x${r.source.input_size}) -> ${r.data.name} (${r.data.classes.length} classes${r.shots !== null ? `, ${r.shots} shots per class` : ''}, ${r.epochs} epochs)`,
    table(['seed', 'test acc %', 'AUC', 'train images', 'seconds'], rows),
    `mean accuracy ${pct(r.accuracy.mean)}%${ci(r.accuracy)}, mean AUC ${r.auc.mean.toFixed(3)}`,
    `deployed params ${(r.params_deployed / 1e6).toFixed(2)} M` +
      (r.compression_ratio !== null ? `, foundation ${(r.params_foundation! / 1e6).toFixed(2)} M, ratio ${r.compression_ratio.toFixed(3)}` : ', foundation unknown (pass --foundation FILE for the ratio)'),
  ].join('\n');
}

export function registerTransfer(program: Command, rt: CliRuntime): void {
  const d = TRANSFER_DEFAULTS;
  deviceOptions(program.command('transfer'))
    .description('fine-tune a deployed network on a downstream data set (paper 4.3): AdamW, all layers, a new head; test accuracy/AUC over seeds')
    .requiredOption('--from <file|scratch>', 'an exported expert, a foundation file, a decomposition checkpoint (with --backbone), or scratch (with --model)')
    .requiredOption('--data <path>', 'downstream data: an ImageFolder root (train/ val/ test/ class folders, or flat class folders), a MedMNIST-format .npz, or a pack (pack:DIR, or pack:DIR#TASK for one task of several; streamed)')
    .requiredOption('--out <dir>', 'output folder (one seed-<s>/ folder per seed, transfer.json)')
    .option('--backbone', "with a decomposition checkpoint: transfer its shared W0 backbone (the paper's dagger)")
    .option('--model <name>', 'architecture for --from scratch (default shufflenet_v2_x1_0)')
    .option('--input <size>', 'input side for --from scratch (files carry their own)', intOption('input', 8), 64)
    .option('--foundation <file>', 'foundation file for the compression ratio (default: found beside --from)')
    .option('--shots <k>', 'training images per class (seeded; default: the whole training split)', intOption('shots'))
    .option('--epochs <n>', 'epochs', intOption('epochs'), d.epochs)
    .option('--lr <x>', 'AdamW learning rate', numberOption('lr'), d.lr)
    .option('--wd <x>', 'AdamW weight decay', numberOption('wd'), d.weightDecay)
    .option('--batch <n>', 'batch size', intOption('batch'), d.batch)
    .option('--seeds <list>', 'comma list of seeds (shots drawn, head initialised, data order)', seedsOption, d.seeds)
    .option('--val-split <x>', 'flat image folder: fraction of each class for val', numberOption('val-split'), d.valSplit)
    .option('--test-split <x>', 'flat image folder: fraction of each class for test', numberOption('test-split'), d.testSplit)
    .option('--split-seed <n>', 'flat image folder: seed of the split', intOption('split-seed', 0), d.splitSeed)
    .option('--nchw', 'run in NCHW instead of channels_last')
    .option('--resume', 'continue the transfer in --out (finished seeds are kept)')
    .option('--quiet', 'no progress output')
    .option('--json', 'print one JSON object at the end')
    .action((o) =>
      run(async () => {
        const src = resolveSource({ from: o.from, backbone: !!o.backbone, model: o.model, input: o.input, foundation: o.foundation });
        const spec = {
          data: o.data, shots: o.shots ?? null, epochs: o.epochs, lr: o.lr, weightDecay: o.wd, batch: o.batch, seeds: o.seeds,
          valSplit: o.valSplit, testSplit: o.testSplit, splitSeed: o.splitSeed, channelsLast: !o.nchw,
        };
        const r = await runTransfer(src, spec, o.out, { progress: progressOf(o), resume: !!o.resume, ...runtimeOf(o, rt) });
        emit(!!o.json, r, () => transferTable(r));
      }),
    );
}
