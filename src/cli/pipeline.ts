// The main job: foundation, decompose, eval and demo (export and predict in their own files).
import type { Command } from 'commander';
import path from 'node:path';
import { trainFoundation, loadFoundation } from '../experiments/foundation.js';
import { trainDecomposition, type KdMode } from '../experiments/decompose.js';
import { loadDecomposition } from '../lorkd/checkpoint.js';
import { STRATEGIES, type StrategyOption } from '../lorkd/strategies.js';
import { loadSuite } from '../experiments/data-options.js';
import { evaluateRun, resultsTable, RESULTS_HEADER, type RunResults } from '../experiments/report.js';
import { RunDir } from '../experiments/run-dir.js';
import { runDemo, DEMO_TASKS } from '../experiments/demo.js';
import { UserError } from '../tensor/errors.js';
import { autocast } from '../tensor/index.js';
import { checkRecordedTasks } from '../io/metadata.js';
import { teacherOptions, teacherFlagsOf } from './teacher-options.js';
import { dataOptions, trainOptions, toData, progressOf, deviceOptions, runtimeOf, methodOptions } from './common.js';
import { emit, intOption, run, table } from './output.js';
import type { CliRuntime } from './distributed.js';

export function kdOf(v: string): KdMode {
  if (v !== 'feature' && v !== 'logits' && v !== 'none') throw new UserError(`--kd must be feature, logits or none, got "${v}"`);
  return v;
}
export function strategyOf(v: string): StrategyOption {
  if (v !== 'auto' && !(STRATEGIES as readonly string[]).includes(v)) throw new UserError(`--strategy must be auto or one of ${STRATEGIES.join(', ')}, got "${v}"`);
  return v as StrategyOption;
}

export function printResults(json: boolean, r: RunResults & Record<string, unknown>): void {
  emit(json, r, () => table(RESULTS_HEADER, resultsTable(r)));
}

export function registerPipeline(program: Command, rt: CliRuntime): void {
  deviceOptions(trainOptions(dataOptions(program.command('foundation'), { input: 64, batch: 128 }), { epochs: 12, lr: 0.05 }))
    .description('train the foundation (teacher) model on the union of the tasks with one unified head')
    .option('--arch <name>', 'architecture: resnet50 (the paper), resnet18, vit_b_16, vit_tiny_p8 (a ViT-Tiny with 8 px patches, made for 64 px), or any registered model (docs/ARCHITECTURES.md)', 'resnet18')
    .option('--init <file>', "start from these weights (safetensors, torchvision names; a ViT's heads.head is read as fc, its position embedding resized to the input's patch grid)")
    .requiredOption('--out <dir>', 'run directory')
    .action((o) =>
      run(async () => {
        const r = await trainFoundation({ ...toData(o), arch: o.arch, epochs: o.epochs, lr: o.lr, momentum: o.momentum, weightDecay: o.wd, patience: o.patience, checkpointSteps: o.checkpointEvery, init: o.init, out: o.out, resume: !!o.resume, progress: progressOf(o), ...runtimeOf(o, rt) });
        emit(!!o.json, { file: r.file, best_epoch: r.result.bestEpoch, best_val_accuracy: r.result.bestVal, history: r.result.history }, () => `foundation written to ${r.file} (best validation accuracy ${r.result.bestVal?.toFixed(4) ?? '-'})`);
        r.model.dispose();
      }),
    );

  methodOptions(teacherOptions(deviceOptions(trainOptions(dataOptions(program.command('decompose'), { input: 64, batch: 128 }), { epochs: 12, lr: 0.05 }))), { rank: true })
    .description('decompose a foundation model into per-task low-rank experts (LoRKD)')
    .option('--foundation <file>', 'the teacher: a foundation model (lorkd foundation output) or any ONNX model (.onnx); not needed with --kd none')
    .option('--model <name>', 'backbone of the decomposition model', 'shufflenet_v2_x1_0')
    .requiredOption('--out <dir>', 'run directory')
    .action((o) =>
      run(async () => {
        const r = await trainDecomposition({
          ...toData(o), foundation: o.foundation, teacher: teacherFlagsOf(o), model: o.model, rank: o.rank, loraAlpha: o.loraAlpha, alpha: o.alpha, beta: o.beta, kd: kdOf(o.kd),
          strategy: strategyOf(o.strategy), epochs: o.epochs, lr: o.lr, momentum: o.momentum, weightDecay: o.wd, patience: o.patience, checkpointSteps: o.checkpointEvery, out: o.out, resume: !!o.resume, progress: progressOf(o), ...runtimeOf(o, rt),
        });
        emit(!!o.json, { file: r.file, best_epoch: r.result.bestEpoch, best_val_accuracy: r.result.bestVal, history: r.result.history }, () => `decomposition model written to ${r.file} (best validation accuracy ${r.result.bestVal?.toFixed(4) ?? '-'})`);
        r.dm.dispose();
      }),
    );

  deviceOptions(dataOptions(program.command('eval'), { input: 64, batch: 256 }))
    .description('per-task test accuracy and AUC of the foundation (unified and restricted) and the LoRKD experts')
    .option('--run <dir>', 'run directory holding foundation.safetensors and decomposition.safetensors')
    .option('--foundation <file>', 'foundation model file')
    .option('--decomposition <file>', 'decomposition model file')
    .option('--split <s>', 'test | val', 'test')
    .action((o) =>
      run(() => {
        const f = o.foundation ?? (o.run && path.join(o.run, 'foundation.safetensors'));
        const d = o.decomposition ?? (o.run && path.join(o.run, 'decomposition.safetensors'));
        if (!f || !d) throw new UserError('eval needs --run DIR or both --foundation and --decomposition');
        if (o.split !== 'test' && o.split !== 'val') throw new UserError('--split must be test or val');
        const { device, precision } = runtimeOf(o);
        const data = { ...toData(o), device };
        const { model, meta } = loadFoundation(f);
        const dm = loadDecomposition(d, { strategy: 'fused' });
        const suite = loadSuite(data);
        checkRecordedTasks(meta.tasks, suite.tasks, f);
        checkRecordedTasks(dm.config.tasks, suite.tasks, d);
        model.to(device);
        dm.to(device);
        if (data.channelsLast) {
          model.toChannelsLast();
          dm.toChannelsLast();
        }
        const r = autocast(device, precision, () => evaluateRun(suite, data, model, meta.model, dm, o.split, meta.input));
        if (o.run) RunDir.open(o.run, { resume: true, marker: '-' }).writeJson(`eval-${o.split}.json`, r);
        printResults(!!o.json, r as RunResults & Record<string, unknown>);
      }),
    );

  program
    .command('demo')
    .description('the whole pipeline on the six bundled tasks: foundation, decompose, eval, export, analyses, report (about 10 minutes on 2 cores)')
    .option('--out <dir>', 'run directory (re-running resumes and re-reports)', 'runs/demo')
    .option('--epochs <n>', 'decomposition epochs', intOption('epochs', 0), 12)
    .option('--foundation-epochs <n>', 'foundation epochs (early stopping on validation)', intOption('foundation-epochs', 0), 8)
    .option('--input <size>', 'input side of the experts', intOption('input', 8), 64)
    .option('--foundation-input <size>', 'input side of the foundation model (28: MedMNIST ResNet-18 (28))', intOption('foundation-input', 8), 28)
    .option('--seed <n>', 'seed', intOption('seed', 0), 0)
    .option('--tasks <list>', 'the suite: bundled names, med6 (the six bundled tasks), .npz paths or ImageFolder roots', DEMO_TASKS.join(','))
    .option('--quiet', 'no progress output')
    .option('--json', 'end with one JSON line of the results')
    .action((o) =>
      run(async () => {
        const r = await runDemo({ out: o.out, epochs: o.epochs, foundationEpochs: o.foundationEpochs, input: o.input, foundationInput: o.foundationInput, seed: o.seed, tasks: toData(o).tasks, progress: progressOf(o) });
        if (!o.json) console.log(table(RESULTS_HEADER, resultsTable(r.results)));
        // The demo ends with its HTML report (the report layer sits above experiments: called here).
        const report = await (await import('../report/index.js')).writeReport({ run: r.runDir, progress: progressOf(o) });
        if (!o.json) console.log(`\nresults: ${r.resultsFile}\nexperts: ${r.experts.join(', ')}\nreport: ${report.file}`);
        else console.log(JSON.stringify({ lorkd_mean_accuracy: r.results.lorkd.mean_accuracy, foundation_mean_accuracy: r.results.foundation.mean_accuracy, foundation_mean_accuracy_restricted: r.results.foundation.mean_accuracy_restricted, per_task: perTask(r.results), experts: r.experts, results_file: r.resultsFile, report_file: report.file, run_dir: r.runDir, seconds: r.seconds }));
      }),
    );
}

function perTask(r: RunResults) {
  return r.tasks.map((t, i) => ({
    task: t,
    foundation_accuracy: r.foundation.unified[i]!.accuracy,
    foundation_restricted_accuracy: r.foundation.restricted[i]!.accuracy,
    lorkd_accuracy: r.lorkd.per_task[i]!.accuracy,
    lorkd_auc: r.lorkd.per_task[i]!.auc,
    foundation_auc: r.foundation.unified[i]!.auc,
  }));
}
