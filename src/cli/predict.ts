// lorkd predict: run an exported expert on a MedMNIST-format .npz or on PNG/JPEG files.
import { type Command, InvalidArgumentError, Option } from 'commander';
import { UserError } from '../tensor/errors.js';
import { SPLITS, type Split } from '../data/dataset.js';
import { predict } from '../export/predict.js';
import { accuracy, auc } from '../eval/metrics.js';
import { emit, intOption, run, table } from './output.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** An option parser whose UserError becomes commander's own one-line usage error. */
function parsed<T>(parse: (v: string) => T): (v: string) => T {
  return (v) => {
    try {
      return parse(v);
    } catch (e) {
      throw e instanceof UserError ? new InvalidArgumentError(e.message) : e;
    }
  };
}

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('predict classes with an exported expert (.safetensors) on a MedMNIST-format .npz or PNG/JPEG files')
    .requiredOption('--model <file>', 'expert file written by lorkd export')
    .requiredOption('--input <path>', 'a .npz (MedMNIST layout) or a PNG/JPEG file; repeat for more', collect, [])
    .addOption(new Option('--split <split>', 'split of .npz inputs').choices(SPLITS).default('test'))
    .option('--limit <n>', 'predict at most n images', parsed(intOption('limit')))
    .option('--batch-size <n>', 'images per forward pass', parsed(intOption('batch-size')), 256)
    .option('--json', 'print one JSON object')
    .action((o: { model: string; input: string[]; split: Split; limit?: number; batchSize: number; json?: boolean }) =>
      run(() => {
        const rows = predict(o.model, o.input, { split: o.split, limit: o.limit, batchSize: o.batchSize });
        const classes = rows.length ? Object.keys(rows[0]!.probs) : [];
        const labelled = rows.filter((r) => r.label !== undefined);
        const metrics: { n: number; accuracy: number; auc: number } | undefined = labelled.length
          ? {
              n: labelled.length,
              accuracy: accuracy(labelled.map((r) => classes.indexOf(r.class)), labelled.map((r) => classes.indexOf(r.label!))),
              auc: auc(labelled.map((r) => classes.map((c) => r.probs[c]!)), labelled.map((r) => classes.indexOf(r.label!))),
            }
          : undefined;
        emit(!!o.json, { model: o.model, predictions: rows, ...(metrics ? { metrics } : {}) }, () => {
          const name = (r: (typeof rows)[number]) => (r.index !== undefined ? `${r.input}[${r.index}]` : r.input);
          const header = labelled.length ? ['input', 'class', 'probability', 'label'] : ['input', 'class', 'probability'];
          const body = rows.map((r) => {
            const cells = [name(r), r.class, r.probs[r.class]!.toFixed(4)];
            if (labelled.length) cells.push(r.label ?? '');
            return cells;
          });
          const lines = [table(header, body)];
          if (metrics) {
            const a = Number.isNaN(metrics.auc) ? 'n/a' : metrics.auc.toFixed(4);
            lines.push(`accuracy ${metrics.accuracy.toFixed(4)}  AUC ${a}  (${metrics.n} labelled images)`);
          }
          return lines.join('\n');
        });
      }),
    );
}
