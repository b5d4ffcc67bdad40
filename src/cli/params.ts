// lorkd params: parameter and FLOP counts of a decomposition model, the paper's way.
import type { Command } from 'commander';
import { complexity } from '../eval/complexity.js';
import { methodParams } from '../experiments/method-params.js';
import { emit, intOption, run, table } from './output.js';
import { parseRankSpec, ranksOf } from '../lorkd/ranks.js';
import type { RankSpec } from '../lorkd/decomposition.js';
import { UserError } from '../tensor/errors.js';

export function registerParams(program: Command): void {
  program
    .command('params')
    .description('parameters and FLOPs of a decomposition model and of one deployed expert (paper Tables 1 and 4)')
    .option('--tasks <T>', 'number of tasks (experts); with a per-task --rank, the tasks it names', intOption('tasks'))
    .option('--rank <r>', 'rank of each expert (8), or one per task (breastmnist=4,retinamnist=16): then counted per task', (v: string) => parseRankSpec(v), 8)
    .option('--model <name>', 'backbone', 'shufflenet_v2_x1_0')
    .option('--input <size>', 'input image size for FLOPs', intOption('input', 8), 224)
    .option('--classes <n>', 'classes per task head (for the with-heads count)', intOption('classes'), 2)
    .option('--method <name>', 'count this method (Table 1) instead: params_training and params_deployment')
    .option('--json', 'print one JSON object')
    .action((o) =>
      run(() => {
        const spec = o.rank as RankSpec;
        const names = typeof spec === 'number' ? null : Object.keys(spec);
        if (names && o.tasks !== undefined && o.tasks !== names.length) throw new UserError(`--tasks ${o.tasks} but --rank names ${names.length} tasks`);
        if (!names && o.tasks === undefined) throw new UserError('give --tasks T (or a rank per task: --rank name=r,...)');
        const tasks: number = names?.length ?? o.tasks;
        if (o.method !== undefined) {
          if (names) throw new UserError('--method counts take one --rank for every task');
          const m = methodParams({ method: String(o.method), tasks, classes: o.classes, rank: spec as number, model: o.model });
          emit(!!o.json, m, () => table(['method', 'tasks', 'Params training', 'Params deployment'], [[m.method, m.tasks, `${(m.params_training / 1e6).toFixed(2)} M`, `${(m.params_deployment / 1e6).toFixed(2)} M`]]));
          return;
        }
        const r = complexity({ model: o.model, tasks, rank: names ? ranksOf(spec, names) : (spec as number), ...(names ? { names } : {}), input: o.input, classes: new Array(tasks).fill(o.classes) });
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
            ...(names ? r.per_task.map((t) => [`experts of ${t.name} (r = ${t.rank}): Params, FLOPs (training)`, `${M(t.params_experts)}, ${G(t.flops_training)}`]) : []),
          ]),
        );
      }),
    );
}
