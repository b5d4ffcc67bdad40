// lorkd grow / lorkd retire (docs/GROW.md): a department joins a trained decomposition (one new
// expert per expert conv and a new head, trained on the frozen W0 and BatchNorm statistics through
// the one training path, method `grow`), or leaves it (its experts and head removed). Every other
// tensor keeps its bits.
import type { Command } from 'commander';
import path from 'node:path';
import { readSafetensorsMetadata } from '../io/safetensors.js';
import { readDecomposition, saveDecomposition } from '../lorkd/checkpoint.js';
import { recordedPreprocessing } from '../data/preprocessing.js';
import { runMethod, DECOMPOSITION_FILE } from '../experiments/run-method.js';
import { loadSuite } from '../experiments/data-options.js';
import { checkGrow } from '../experiments/methods/grow.js';
import { UserError } from '../tensor/errors.js';
import { teacherOptions, teacherFlagsOf } from './teacher-options.js';
import { dataOptions, trainOptions, toData, progressOf, deviceOptions, runtimeOf, methodOptions } from './common.js';
import { emit, run } from './output.js';
import { kdOf, strategyOf } from './pipeline.js';
import { resultTable } from './run.js';
import type { CliRuntime } from './distributed.js';

export function registerGrow(program: Command, rt: CliRuntime): void {
  const c = teacherOptions(deviceOptions(trainOptions(dataOptions(program.command('grow'), { input: 64, batch: 128 }), { epochs: 12, lr: 0.05 })))
    .description('add departments to a trained decomposition: trains one new expert per conv and a new head for each task of --tasks on the frozen W0 and BatchNorm statistics; every existing tensor keeps its bits. Writes DIR/decomposition.safetensors (T + new tasks), the new deployed networks and result.json')
    .requiredOption('--decomposition <file>', 'the trained decomposition (decomposition.safetensors of decompose, run --method lorkd, or an earlier grow)')
    .requiredOption('--out <dir>', 'run directory')
    .option('--model <name>', 'backbone (must be the decomposition\'s)', 'shufflenet_v2_x1_0')
    .option('--foundation <file>', 'the teacher for --kd feature|logits: a foundation model file or ONNX model that knows the new tasks')
    .addHelpText('after', '\nThe new tasks (--tasks: bundled names, .npz files or folders) must not be tasks of the decomposition. --input defaults to the\ndecomposition\'s recorded input size; another size is refused (its BatchNorm statistics were taken at that size). --rank defaults\nto the decomposition\'s largest rank.');
  methodOptions(c, { rank: true, kdDefault: 'none', rankDefault: null });
  c.action((o) =>
    run(async () => {
      const file = String(o.decomposition);
      const md = readSafetensorsMetadata(file);
      const given = (name: string) => c.getOptionValueSource(name) === 'cli';
      const recorded = recordedPreprocessing(md, file, given('input') ? { input: o.input } : {});
      if (given('input') && recorded.inputSize !== o.input) throw new UserError(`${file} was trained at ${recorded.inputSize}x${recorded.inputSize}: its frozen BatchNorm statistics do not fit --input ${o.input}`);
      const data = { ...toData(o), input: recorded.inputSize, mean: recorded.mean as [number, number, number], std: recorded.std as [number, number, number] };
      // The refusals, before any training: the decomposition is read, the new tasks' names checked.
      const base = readDecomposition(file, { strategy: 'fused' });
      try {
        checkGrow(base.model, loadSuite(data).tasks, 3, file);
      } finally {
        base.model.dispose();
      }
      const kd = kdOf(o.kd);
      const r = await runMethod({
        ...data, method: 'grow', decomposition: path.resolve(file), out: o.out, model: o.model, foundation: o.foundation, teacher: teacherFlagsOf(o), kd, alpha: o.alpha, beta: o.beta,
        ...(given('rank') ? { rank: o.rank } : {}), loraAlpha: o.loraAlpha, strategy: strategyOf(o.strategy), epochs: o.epochs, lr: o.lr, momentum: o.momentum, weightDecay: o.wd,
        patience: o.patience, resume: !!o.resume, progress: progressOf(o), ...runtimeOf(o, rt),
      });
      emit(!!o.json, { ...r, decomposition_file: path.join(o.out, DECOMPOSITION_FILE) }, () => `${resultTable(r)}\ngrown decomposition: ${path.join(o.out, DECOMPOSITION_FILE)}`);
    }),
  );

  program
    .command('retire')
    .description('remove a department from a decomposition: its experts and head leave the file; every other tensor keeps its bits')
    .requiredOption('--decomposition <file>', 'the decomposition')
    .requiredOption('--task <name>', 'the task to remove')
    .requiredOption('--out <file>', 'the new decomposition file')
    .option('--json', 'print one JSON object at the end')
    .action((o) =>
      run(() => {
        const file = String(o.decomposition);
        if (path.resolve(o.out) === path.resolve(file)) throw new UserError('--out must be another file than --decomposition (the original stays as it is)');
        const { model, metadata } = readDecomposition(file, { strategy: 'fused' });
        try {
          model.removeTask(String(o.task));
          const extra = Object.fromEntries(Object.entries(metadata).filter(([k]) => k !== 'lorkd_format' && k !== 'config'));
          saveDecomposition(o.out, model, { ...extra, retired_from: path.resolve(file), retired_task: String(o.task) });
          const tasks = model.config.tasks.map((t) => t.name);
          emit(!!o.json, { file: o.out, tasks }, () => `${o.out}: ${tasks.length} tasks (${tasks.join(', ')}); "${o.task}" retired`);
        } finally {
          model.dispose();
        }
      }),
    );
}
