// Options shared by the pipeline commands.
import type { Command } from 'commander';
import { DEFAULT_TASKS, type DataOptions } from '../experiments/data-options.js';
import { createProgress, type Progress } from '../experiments/progress.js';
import { expandTaskList } from '../data/bundled.js';
import { intOption, numberOption } from './output.js';
import { STRATEGIES } from '../lorkd/strategies.js';
import { checkDevice, checkPrecision, parseDevice, parsePrecision, type Precision } from '../tensor/index.js';
import { parseRankSpec } from '../lorkd/ranks.js';
import type { CliRuntime } from './distributed.js';

export function dataOptions(c: Command, defaults: { input: number; batch: number }): Command {
  return c
    .option('--tasks <list>', 'comma list of bundled task names, med6 (= all: the six bundled tasks), MedMNIST-format .npz paths, ImageFolder roots (task = folder name), or packs of lorkd pack (pack:DIR or the folder: every task it holds, streamed from disk)', DEFAULT_TASKS.join(','))
    .option('--input <size>', 'input side (bilinear resize)', intOption('input', 8), defaults.input)
    .option('--batch <n>', 'batch size', intOption('batch'), defaults.batch)
    .option('--seed <n>', 'seed (data order, flips, initialisation)', intOption('seed', 0), 0)
    .option('--nchw', 'run in NCHW instead of channels_last')
    .option('--quiet', 'no progress output')
    .option('--json', 'print one JSON object at the end');
}

export function trainOptions(c: Command, d: { epochs: number; lr: number }): Command {
  return c
    .option('--epochs <n>', 'epochs', intOption('epochs', 0), d.epochs)
    .option('--lr <x>', 'SGD learning rate (cosine annealing)', numberOption('lr'), d.lr)
    .option('--momentum <x>', 'SGD momentum', numberOption('momentum'), 0.9)
    .option('--wd <x>', 'weight decay', numberOption('wd'), 1e-4)
    .option('--patience <n>', 'stop when validation accuracy has not improved for n epochs', intOption('patience'))
    .option('--resume', 'continue the run in --out from its last checkpoint')
    .option('--checkpoint-every <steps>', 'also write the checkpoint every n steps inside an epoch (long epochs; --resume continues at the next step)', intOption('checkpoint-every', 0), 0);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function toData(o: any): DataOptions {
  return { tasks: expandTaskList(String(o.tasks).split(',').map((s) => s.trim()).filter(Boolean)), input: o.input, batch: o.batch, seed: o.seed, channelsLast: !o.nchw };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function progressOf(o: any): Progress {
  return createProgress({ quiet: !!o.quiet });
}

/** Where a command runs its models, and in which precision: `--device` (LORKD_DEVICE) and `--precision`. */
export function deviceOptions(c: Command): Command {
  return c
    .option('--device <d>', 'cpu | cuda | cuda:N (default: LORKD_DEVICE, else cpu)', process.env.LORKD_DEVICE ?? 'cpu')
    .option('--precision <p>', 'fp32 | bf16 | fp16: autocast of the forward passes (fp16 on CUDA, with loss scaling when training)', 'fp32');
}

/**
 * The device and precision a command was given, checked (one line when CUDA is asked for on a build
 * or machine without it); a rank of `lorkd launch` takes its own device (cuda:LOCAL_RANK).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function runtimeOf(o: any, rt?: CliRuntime): { device: string; precision: Precision; dist: CliRuntime['dist'] } {
  const device = rt?.dist ? rt.dist.group.env.device : checkDevice(parseDevice(String(o.device)));
  const precision = parsePrecision(String(o.precision));
  checkPrecision(device, precision);
  return { device, precision, dist: rt?.dist ?? null };
}

/** The options of the methods that distil and decompose (their specs list which they take): --kd, --alpha, --beta, --strategy, and with `rank` --rank and --lora-alpha. */
export function methodOptions(c: Command, o: { rank: boolean; kdHelp?: string; kdDefault?: string; rankDefault?: number | null }): Command {
  c.option('--kd <mode>', o.kdHelp ?? 'feature (released code) | logits | none', o.kdDefault ?? 'feature')
    .option('--alpha <t>', 'KD temperature', numberOption('alpha'), 10)
    .option('--beta <w>', 'KD weight', numberOption('beta'), 1)
    .option('--strategy <s>', `EKS strategy of LoRKD: auto | ${STRATEGIES.join(' | ')}`, 'auto');
  if (o.rank) {
    c.option('--rank <r>', 'expert rank: one for every task (8) or one per task (breastmnist=4,retinamnist=16)', (v: string) => parseRankSpec(v), o.rankDefault === null ? undefined : (o.rankDefault ?? 8)).option('--lora-alpha <a>', 'expert scaling numerator (delta = BA * a / r); default r', numberOption('lora-alpha'));
  }
  return c;
}
