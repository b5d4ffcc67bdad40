// lorkd predict: run an exported expert on MedMNIST-format .npz files, PNG/JPEG/DICOM files and
// folders of them. A bad file is one line on stderr and the run goes on; a summary ends the
// output, and the exit status is 1 when any input failed.
import { deviceOptions, runtimeOf } from './common.js';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { UserError } from '../tensor/errors.js';
import { SPLITS, type Split } from '../data/dataset.js';
import { type PredictInputsOptions, type PredictReport, predictInputs, predictInputsOnnx } from '../export/predict.js';
import { accuracy, auc } from '../eval/metrics.js';
import { createProgress } from '../experiments/progress.js';
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

interface PredictCliOptions {
  model: string;
  input: string[];
  split: Split;
  limit?: number;
  batchSize: number;
  quiet?: boolean;
  json?: boolean;
  device: string;
  precision: string;
}

/** Accuracy and AUC over the labelled predictions (absent without labels). */
function metricsOf(r: PredictReport): { n: number; accuracy: number; auc: number } | undefined {
  const rows = r.predictions;
  const classes = rows.length ? Object.keys(rows[0]!.probs) : [];
  const labelled = rows.filter((p) => p.label !== undefined);
  if (!labelled.length) return undefined;
  return {
    n: labelled.length,
    accuracy: accuracy(labelled.map((p) => classes.indexOf(p.class)), labelled.map((p) => classes.indexOf(p.label!))),
    auc: auc(labelled.map((p) => classes.map((c) => p.probs[c]!)), labelled.map((p) => classes.indexOf(p.label!))),
  };
}

function human(r: PredictReport, metrics: ReturnType<typeof metricsOf>): string {
  const rows = r.predictions;
  const labelled = metrics !== undefined;
  const name = (p: (typeof rows)[number]) => (p.index !== undefined ? `${p.input}[${p.index}]` : p.input);
  const header = labelled ? ['input', 'class', 'probability', 'label'] : ['input', 'class', 'probability'];
  const body = rows.map((p) => {
    const cells = [name(p), p.class, p.probs[p.class]!.toFixed(4)];
    if (labelled) cells.push(p.label ?? '');
    return cells;
  });
  const lines = rows.length ? [table(header, body)] : [];
  if (metrics) {
    const a = Number.isNaN(metrics.auc) ? 'n/a' : metrics.auc.toFixed(4);
    lines.push(`accuracy ${metrics.accuracy.toFixed(4)}  AUC ${a}  (${metrics.n} labelled images)`);
  }
  if (r.failures.length || r.skipped) lines.push(summary(r));
  return lines.join('\n');
}

const summary = (r: PredictReport): string =>
  `${r.predictions.length} image${r.predictions.length === 1 ? '' : 's'} predicted, ${r.failures.length} input${r.failures.length === 1 ? '' : 's'} failed` +
  (r.skipped ? `, ${r.skipped} non-image file${r.skipped === 1 ? '' : 's'} skipped` : '');

export function registerPredict(program: Command): void {
  deviceOptions(program.command('predict'))
    .description('predict classes with an exported expert (.safetensors or .onnx) on MedMNIST-format .npz files, packs (pack:DIR or the folder; streamed), PNG/JPEG/DICOM files and folders of them (bad files are reported and skipped; exit status 1 when any failed)')
    .requiredOption('--model <file>', 'expert file written by lorkd export: .safetensors (run by lorkd) or .onnx (run by onnxruntime-node)')
    .requiredOption('--input <path>', 'a .npz (MedMNIST layout), a pack (pack:DIR or its folder), an image (PNG, JPEG, DICOM) or a folder of images (recursive; class subfolders named after the classes give labels); repeat for more', collect, [])
    .addOption(new Option('--split <split>', 'split of .npz and pack inputs').choices(SPLITS).default('test'))
    .option('--limit <n>', 'predict at most n images', parsed(intOption('limit')))
    .option('--batch-size <n>', 'images per forward pass', parsed(intOption('batch-size')), 256)
    .option('--quiet', 'no progress on stderr (bad files are still reported)')
    .option('--json', 'print one JSON object')
    .action((o: PredictCliOptions) =>
      run(async () => {
        const progress = createProgress({ quiet: !!o.quiet });
        const onnx = o.model.toLowerCase().endsWith('.onnx');
        if (onnx && (o.device !== 'cpu' || o.precision !== 'fp32')) throw new UserError('--device and --precision apply to .safetensors experts; an .onnx expert runs in onnxruntime-node on the CPU in float32');
        let started = false;
        const options: PredictInputsOptions = {
          split: o.split, limit: o.limit, batchSize: o.batchSize, ...runtimeOf(o),
          onFailure: (f) => process.stderr.write(`lorkd: ${f.error}\n`),
          onProgress: (done, total) => {
            if (total < 2 * o.batchSize) return; // a bar only for work of several batches
            if (!started) progress.start('predict', total);
            started = true;
            progress.update(done, {});
          },
        };
        const r = onnx ? await predictInputsOnnx(o.model, o.input, options) : predictInputs(o.model, o.input, options);
        if (started) progress.stop();
        const metrics = metricsOf(r);
        const counts = { predicted: r.predictions.length, failed: r.failures.length, skipped: r.skipped };
        emit(!!o.json, { model: o.model, predictions: r.predictions, ...(metrics ? { metrics } : {}), failures: r.failures, summary: counts }, () => human(r, metrics));
        if (r.failures.length) {
          if (!o.json) console.error(`lorkd: ${summary(r)}`);
          process.exitCode = 1;
        }
      }),
    );
}
