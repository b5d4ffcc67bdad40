// lorkd run --method NAME: one run of any method of the registry on the one training path
// (src/experiments/run-method.ts): trained, evaluated, its deployed networks written, result.json.
// The method's spec says which options it takes; an option it does not take is refused.
import type { Command } from 'commander';
import { runMethod, type MethodResult } from '../experiments/run-method.js';
import { availableMethods, methodSpec, type MethodOption } from '../experiments/methods/index.js';
import { UserError } from '../tensor/errors.js';
import { teacherOptions, teacherFlagsOf } from './teacher-options.js';
import { dataOptions, trainOptions, toData, progressOf, deviceOptions, runtimeOf, methodOptions } from './common.js';
import { emit, run, table } from './output.js';
import { kdOf, strategyOf } from './pipeline.js';
import type { CliRuntime } from './distributed.js';

/** Each method option's flag (commander's attribute name -> what the user typed). */
const FLAGS: Record<MethodOption, string> = { kd: '--kd', alpha: '--alpha', beta: '--beta', rank: '--rank', loraAlpha: '--lora-alpha', strategy: '--strategy' };

export function resultTable(r: MethodResult): string {
  const pct = (x: number) => (100 * x).toFixed(1);
  const rows = r.per_task.map((t, i) => [r.tasks[i]!, pct(t.accuracy), t.auc.toFixed(3), pct(r.deployed[i]!.accuracy)]);
  rows.push(['mean', pct(r.mean_accuracy), r.mean_auc.toFixed(3), pct(r.deployed.reduce((a, d) => a + d.accuracy, 0) / Math.max(r.deployed.length, 1))]);
  return `${r.method}, seed ${r.seed}: Params(M) training ${(r.params_training / 1e6).toFixed(2)}, deployed ${(r.params_deployment / 1e6).toFixed(2)}\n` +
    table(['task', 'test acc %', 'AUC', 'deployed acc %'], rows);
}

export function registerRun(program: Command, rt: CliRuntime): void {
  const c = teacherOptions(deviceOptions(trainOptions(dataOptions(program.command('run'), { input: 64, batch: 128 }), { epochs: 12, lr: 0.05 })))
    .description('train and evaluate one method of Table 1 (foundation, stl, mtl, ..., kf, lorkd); writes its deployed networks and result.json')
    .requiredOption('--method <name>', `one of ${availableMethods().join(', ')}`)
    .requiredOption('--out <dir>', 'run directory')
    .option('--model <name>', 'backbone of every method but the foundation', 'shufflenet_v2_x1_0')
    .option('--foundation-arch <name>', "the foundation method's architecture (resnet18, resnet50, vit_tiny_p8, vit_b_16, ...: docs/ARCHITECTURES.md)", 'resnet18')
    .option('--foundation <file>', 'the teacher of a method that distils: a foundation model file or any ONNX model (.onnx)')
;
  methodOptions(c, { rank: true });
  c.action((o) =>
    run(async () => {
      const spec = methodSpec(String(o.method));
      const given = (name: string) => c.getOptionValueSource(name) === 'cli';
      const refused = (Object.keys(FLAGS) as MethodOption[]).filter((k) => given(k) && !spec.options.includes(k)).map((k) => FLAGS[k]);
      if (refused.length) throw new UserError(`${spec.name} does not take ${refused.join(', ')} (it takes ${spec.options.map((k) => FLAGS[k]).join(', ') || 'only the shared budget'})`);
      const kd = kdOf(o.kd);
      if (o.foundation && spec.teacher({ kd, beta: o.beta }).length === 0) throw new UserError(`${spec.name} does not distil${spec.options.includes('kd') ? ` with --kd ${kd}` : ''}: --foundation does not apply`);
      const r = await runMethod({
        ...toData(o), method: spec.name, out: o.out, model: o.model, foundationArch: o.foundationArch, foundation: o.foundation, teacher: teacherFlagsOf(o), kd, alpha: o.alpha, beta: o.beta,
        rank: o.rank, loraAlpha: o.loraAlpha, strategy: strategyOf(o.strategy), epochs: o.epochs, lr: o.lr, momentum: o.momentum, weightDecay: o.wd,
        patience: o.patience, checkpointSteps: o.checkpointEvery, resume: !!o.resume, progress: progressOf(o), ...runtimeOf(o, rt),
      });
      emit(!!o.json, r, () => resultTable(r));
    }),
  );
}
