// lorkd bench: training-step, EKS-strategy, per-op and data-loader benchmarks against PyTorch.
import { runtimeOf } from './common.js';
import type { Command } from 'commander';
import { benchTrain } from '../../bench/train.js';
import { benchEks } from '../../bench/eks.js';
import { benchOps } from '../../bench/ops.js';
import { benchDecompose } from '../../bench/decompose.js';
import { benchData } from '../../bench/data.js';
import { benchInfer } from '../../bench/infer.js';
import { STRATEGIES, type Strategy } from '../lorkd/strategies.js';
import { UserError } from '../tensor/errors.js';
import { emit, intOption, run, table } from './output.js';
import { strategyOf } from './pipeline.js';
import { machineLine, measured } from '../../bench/machine.js';

const f1 = (v: number | null | undefined) => (v === null || v === undefined ? '-' : v.toFixed(v < 10 ? 2 : 1));

export function registerBench(program: Command): void {
  const bench = program.command('bench').description('benchmarks against PyTorch eager (Debian python3-torch) in the same run');
  bench
    .command('train')
    .description('training step (forward, backward, SGD momentum) img/s of a model, lorkd vs PyTorch')
    .option('--model <name>', 'model', 'shufflenet_v2_x1_0')
    .option('--input <size>', 'input size', intOption('input', 8), 28)
    .option('--batch <n>', 'batch size', intOption('batch'), 64)
    .option('--format <f>', 'memory format: channels_last | contiguous', 'channels_last')
    .option('--threads <n>', 'intra-op threads (both engines)', intOption('threads'), 2)
    .option('--steps <n>', 'timed steps', intOption('steps'), 10)
    .option('--forward-only', 'time forward passes only (no grad)')
    .option('--rounds <n>', 'timings per engine, alternating lorkd and PyTorch; the figures are the medians (a shared host drifts)', intOption('rounds', 1), 1)
    .option('--json', 'print one JSON object (with every round: lorkd_runs, pytorch_runs)')
    .action((o) =>
      run(async () => {
        if (o.format !== 'channels_last' && o.format !== 'contiguous') throw new UserError('--format must be channels_last or contiguous');
        const r = await measured(() =>
          benchTrain({ model: o.model, input: o.input, batch: o.batch, format: o.format, threads: o.threads, steps: o.steps, forwardOnly: !!o.forwardOnly, rounds: o.rounds }),
        );
        emit(!!o.json, r, () =>
          table(['model', 'input', 'batch', 'format', 'lorkd img/s', 'pytorch img/s', 'ratio', 'lorkd RSS MB', 'pytorch RSS MB'], [
            [r.model, r.input, r.batch, r.format, f1(r.lorkd_img_per_s), f1(r.pytorch_img_per_s), f1(r.ratio), f1(r.lorkd_peak_rss_mb), f1(r.pytorch_peak_rss_mb)],
          ]) + '\n' + machineLine(r.machine),
        );
      }),
    );
  bench
    .command('eks')
    .description('step time of the decomposition model per EKS strategy vs a plain ShuffleNetV2')
    .option('--tasks <T>', 'tasks', intOption('tasks'), 10)
    .option('--rank <r>', 'rank', intOption('rank'), 8)
    .option('--batch <n>', 'batch size', intOption('batch'), 64)
    .option('--input <size>', 'input size', intOption('input', 8), 64)
    .option('--steps <n>', 'timed steps', intOption('steps'), 5)
    .option('--strategies <list>', `comma list of ${STRATEGIES.join(', ')}`)
    .option('--json', 'print one JSON object')
    .action((o) =>
      run(async () => {
        const strategies = o.strategies ? (String(o.strategies).split(',') as Strategy[]) : undefined;
        for (const s of strategies ?? []) if (!STRATEGIES.includes(s)) throw new UserError(`unknown strategy "${s}"; known: ${STRATEGIES.join(', ')}`);
        const r = await measured(() => benchEks({ tasks: o.tasks, rank: o.rank, batch: o.batch, input: o.input, steps: o.steps, strategies }));
        emit(!!o.json, r, () =>
          table(['strategy', 'ms/step', 'x plain'], [
            ['plain', f1(r.plain_ms), '1.00'],
            ...(strategies ?? [...STRATEGIES]).map((s) => [s, f1(r[`${s}_ms`] as number), f1(r[`${s}_over_plain`] as number)]),
            [`auto (${r.auto_choice})`, f1(r.auto_ms as number), f1(r.auto_over_plain)],
          ]) + '\n' + machineLine(r.machine),
        );
      }),
    );
  bench
    .command('decompose')
    .description('decomposition training img/s on shuffled mixed-task batches of the bundled data: lorkd vs PyTorch eager (best strategy and format) and vs MTL')
    .option('--batch <n>', 'batch size', intOption('batch'), 128)
    .option('--input <size>', 'input size', intOption('input', 8), 64)
    .option('--steps <n>', 'batches per timed pass', intOption('steps'), 4)
    .option('--threads <n>', 'intra-op threads (both engines)', intOption('threads'), 2)
    .option('--strategy <s>', 'LoRKD EKS strategy (auto as lorkd decompose)', 'auto')
    .option('--no-torch', 'skip the PyTorch side')
    .option('--device <d>', 'cpu | cuda | cuda:N, both engines (default: LORKD_DEVICE, else cpu)', process.env.LORKD_DEVICE ?? 'cpu')
    .option('--precision <p>', 'fp32 | bf16 (autocast), both engines', 'fp32')
    .option('--json', 'print one JSON object')
    .action((o) =>
      run(async () => {
        const { device, precision } = runtimeOf(o);
        const r = await measured(() => benchDecompose({ batch: o.batch, input: o.input, steps: o.steps, threads: o.threads, strategy: strategyOf(o.strategy), noTorch: o.torch === false, device, precision }));
        emit(!!o.json, r, () =>
          table(['batch', 'input', 'lorkd img/s', 'pytorch img/s (best)', 'ratio', 'mtl img/s', 'lorkd step / mtl step'], [
            [r.batch, r.input, `${f1(r.lorkd_img_per_s)} (${r.lorkd_strategy})`, r.pytorch_img_per_s === null ? '-' : `${f1(r.pytorch_img_per_s)} (${r.pytorch_best})`, f1(r.ratio), f1(r.mtl_img_per_s), f1(r.lorkd_over_mtl)],
          ]) + '\n' + machineLine(r.machine),
        );
      }),
    );
  const list = (name: string, f: (v: string) => number = Number) => (v: string): number[] => {
    const out = v.split(',').map((e) => f(e.trim()));
    if (out.some((e) => !Number.isInteger(e) || e < 1)) throw new UserError(`--${name} must be a comma list of positive integers, got "${v}"`);
    return out;
  };
  bench
    .command('infer')
    .description('inference img/s on the same weights: lorkd\'s inference path vs PyTorch eager (inference_mode, best memory format) vs onnxruntime-node, and the EKS pass vs the fused expert')
    .option('--models <list>', 'comma list of models', 'shufflenet_v2_x1_0,resnet18')
    .option('--inputs <list>', 'comma list of input sizes', list('inputs'), [64, 224])
    .option('--batches <list>', 'comma list of batch sizes', list('batches'), [1, 8, 32])
    .option('--threads <list>', 'comma list of intra-op thread counts (all engines)', list('threads'), [1, 2])
    .option('--seconds <s>', 'minimum time per measurement', (v: string) => Number(v), 1)
    .option('--eks-tasks <T>', 'tasks of the EKS-pass comparison (0: skip it)', (v: string) => Number(v), 10)
    .option('--rounds <n>', 'timings per engine and case, alternating engines; rows give the medians (a shared host drifts)', intOption('rounds', 1), 1)
    .option('--no-torch', 'skip PyTorch')
    .option('--no-ort', 'skip onnxruntime')
    .option('--json', 'print one JSON object: rows (one per case, with every round), eks, rounds, machine')
    .action((o) =>
      run(async () => {
        if (!(o.seconds > 0)) throw new UserError('--seconds must be a positive number');
        if (!(Number.isInteger(o.eksTasks) && o.eksTasks >= 0)) throw new UserError('--eks-tasks must be an integer >= 0');
        const models = String(o.models).split(',').map((m) => m.trim());
        const r = await measured(() =>
          benchInfer({ models, inputs: o.inputs, batches: o.batches, threads: o.threads, seconds: o.seconds, torch: o.torch !== false, ort: o.ort !== false, eksTasks: o.eksTasks, rounds: o.rounds, progress: (l) => process.stderr.write(l + '\n') }),
        );
        emit(!!o.json, r, () =>
          table(['model', 'input', 'batch', 'threads', 'lorkd img/s', 'pytorch img/s', 'ort img/s', 'lorkd/ort', 'lorkd/pytorch'], r.rows.map((e) => [e.model, e.input, e.batch, e.threads, f1(e.lorkd_img_per_s), e.pytorch_img_per_s === null ? '-' : `${f1(e.pytorch_img_per_s)} (${e.pytorch_format})`, f1(e.ort_img_per_s), f1(e.lorkd_over_ort), f1(e.lorkd_over_pytorch)])) +
            (r.eks.length ? '\n' + table(['EKS pass', 'input', 'batch', 'threads', 'eks img/s', 'fused expert img/s', 'eks time / fused'], r.eks.map((e) => [`${e.tasks} tasks`, e.input, e.batch, e.threads, f1(e.eks_img_per_s), f1(e.fused_img_per_s), f1(e.eks_time_over_fused)])) : '') +
            '\n' + machineLine(r.machine),
        );
      }),
    );
  bench
    .command('data')
    .description('the streaming loader vs PyTorch DataLoader + ImageFolder + PIL (num_workers = cores) on the same files: 224-jpeg and 64-raw img/s, peak RSS of an epoch from a large vs a 2,000-image pack, pack speed')
    .option('--data <pack>', 'time this JPEG pack in the 224-jpeg case (PyTorch reads the folder it was packed from)')
    .option('--images <n>', 'images of the large generated tree (peak RSS, pack speed)', intOption('images'), 200000)
    .option('--loader-images <n>', 'images of the loader trees and of the small pack', intOption('loader-images'), 2000)
    .option('--batch <n>', 'batch size (both loaders)', intOption('batch'), 64)
    .option('--no-torch', 'skip the PyTorch side')
    .option('--quiet', 'no progress lines')
    .option('--json', 'print one JSON object')
    .action((o) =>
      run(async () => {
        const r = await measured(() => benchData({ images: o.images, loaderImages: o.loaderImages, batch: o.batch, data: o.data, noTorch: o.torch === false, log: o.quiet ? undefined : (l) => console.error(l) }));
        emit(!!o.json, r, () =>
          [
            table(['case', 'lorkd img/s', 'pytorch img/s', 'ratio', 'lorkd CPU ms/img', 'pytorch CPU ms/img', 'CPU ratio'], r.rows.map((x) => [x.case, f1(x.lorkd_img_per_s), f1(x.pytorch_img_per_s), f1(x.ratio), f1(x.lorkd_cpu_ms_per_img), f1(x.pytorch_cpu_ms_per_img), f1(x.cpu_ratio)])),
            `peak RSS of an epoch: ${f1(r.rss_small_mb)} MB (${r.images_small} images), ${f1(r.rss_large_mb)} MB (${r.images_large} images)`,
            `pack: ${f1(r.pack_img_per_s)} img/s`,
            machineLine(r.machine),
          ].join('\n'),
        );
      }),
    );
  bench
    .command('ops')
    .description('per-op dispatch overhead and conv2d forward+backward, lorkd vs PyTorch')
    .option('--json', 'print one JSON object: rows (one per op) and machine')
    .action((o) =>
      run(async () => {
        const r = await measured(() => ({ rows: benchOps() }));
        emit(!!o.json, r, () => table(['op', 'lorkd', 'pytorch', 'lorkd/pytorch'], r.rows.map((e) => [e.op, f1(e.lorkd), f1(e.pytorch), f1(e.ratio)])) + '\n' + machineLine(r.machine));
      }),
    );
}
