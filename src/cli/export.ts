// lorkd export: fused experts as safetensors files a torchvision user can load directly.
import type { Command } from 'commander';
import path from 'node:path';
import { readDecomposition } from '../lorkd/checkpoint.js';
import { exportExpert, exportAllExperts } from '../export/export-experts.js';
import { UserError } from '../tensor/errors.js';
import { emit, run } from './output.js';

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('write the fused expert of one task (or all) as safetensors: torchvision names, head fc.weight/fc.bias, preprocessing in the metadata')
    .option('--run <dir>', 'run directory holding decomposition.safetensors')
    .option('--decomposition <file>', 'decomposition model file')
    .option('--task <name>', 'task to export')
    .option('--all', 'export every task: --out is a folder, one <task>.safetensors each')
    .requiredOption('--out <path>', 'output file (or folder with --all)')
    .option('--json', 'print one JSON object')
    .action((o) =>
      run(() => {
        const file = o.decomposition ?? (o.run && path.join(o.run, 'decomposition.safetensors'));
        if (!file) throw new UserError('export needs --run DIR or --decomposition FILE');
        if (!o.all && !o.task) throw new UserError('export needs --task NAME or --all');
        const { model: dm, metadata } = readDecomposition(file, { strategy: 'fused' });
        try {
          const opts = {
            input: Number(metadata.input_size ?? 64),
            mean: JSON.parse(metadata.mean ?? '[0.5,0.5,0.5]') as number[],
            std: JSON.parse(metadata.std ?? '[0.5,0.5,0.5]') as number[],
            source: { decomposition: path.resolve(file) },
          };
          const files = o.all ? exportAllExperts(dm, o.out, opts) : [exportExpert(dm, String(o.task), o.out, opts)];
          emit(!!o.json, { files }, () => files.map((f) => `wrote ${f}`).join('\n'));
        } finally {
          dm.dispose();
        }
      }),
    );
}
