// lorkd params: parameter and FLOP counts of a decomposition model, the paper's way.
import type { Command } from 'commander';
import { complexity } from '../eval/complexity.js';
import { methodParams } from '../experiments/method-params.js';
import { emit, intOption, run, table } from './output.js';

export function registerParams(program: Command): void {
  program
    .command('params')
    .description('parameters and FLOPs of a decomposition model and of one deployed expert (paper Tables 1 and 4)')
    .requiredOption('--tasks <T>', 'number of tasks (experts)', intOption('tasks'))
    .option('--rank <r>', 'rank of each expert', intOption('rank'), 8)
    .option('--model <name>', 'backbone', 'shufflenet_v2_x1_0')
    .option('--input <size>', 'input image size for FLOPs', intOption('input', 8), 224)
    .option('--classes <n>', 'classes per task head (for the with-heads count)', intOption('classes'), 2)
    .option('--method <name>', 'count this method (Table 1) instead: params_training and params_deployment')
    .option('--json', 'print one JSON object')
    .action((o) =>
      run(() => {
        if (o.method !== undefined) {
          const m = methodParams({ method: String(o.method), tasks: o.tasks, classes: o.classes, rank: o.rank, model: o.model });
          emit(!!o.json, m, () => table(['method', 'tasks', 'Params training', 'Params deployment'], [[m.method, m.tasks, `${(m.params_training / 1e6).toFixed(2)} M`, `${(m.params_deployment / 1e6).toFixed(2)} M`]]));
          return;
        }
        const r = complexity({ model: o.model, tasks: o.tasks, rank: o.rank, input: o.input, classes: new Array(o.tasks).fill(o.classes) });
        const M = (n: number) => `${(n / 1e6).toFixed(2)} M`;
        const G = (n: number) => `${(n / 1e9).toFixed(3)} G`;
        emit(!!o.json, r, () =>
          table(['quantity', 'value'], [
            ['Params (training: backbone + experts)', M(r.params_training)],
            [`Params (training, with ${r.tasks} heads)`, M(r.params_training_with_heads)],
            ['Params (deployment: one fused expert)', M(r.params_deployment)],
            ['Params (deployment, with head)', M(r.params_deployment_with_head)],
            [`FLOPs (training, per image at ${r.input})`, G(r.flops_training)],
            [`FLOPs (deployment, per image at ${r.input})`, G(r.flops_deployment)],
          ]),
        );
      }),
    );
}
