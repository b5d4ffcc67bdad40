// lorkd export: fused experts as safetensors files a torchvision user can load directly, or as
// ONNX files (logits + class activation map; src/export/onnx/export.ts has the contract).
import { type Command, Option } from 'commander';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { recordedPreprocessing } from '../data/preprocessing.js';
import { readDecomposition } from '../lorkd/checkpoint.js';
import { exportExpert, exportAllExperts } from '../export/export-experts.js';
import { expertFileToOnnx, networkToOnnx, writeOnnx } from '../export/onnx/export.js';
import { loadSafetensors } from '../io/safetensors.js';
import { foundationToOnnx } from '../export/onnx/foundation.js';
import { loadFoundation } from '../experiments/foundation-file.js';
import { KF_EXPERT_FORMAT, loadKfExpert } from '../experiments/methods/kf-expert.js';
import { UserError } from '../tensor/errors.js';
import { emit, run } from './output.js';
import { writeBundle } from '../experiments/bundle/write.js';
import { createProgress } from '../experiments/progress.js';

type Format = 'safetensors' | 'onnx' | 'bundle';
const FORMATS: readonly Format[] = ['safetensors', 'onnx', 'bundle'];

interface ExportCliOptions {
  run?: string;
  decomposition?: string;
  model?: string;
  task?: string;
  method?: string;
  all?: boolean;
  out: string;
  format: Format;
  json?: boolean;
}

/** Expert files (safetensors) of the decomposition in `file`: one task to `out`, or all into the folder `out`. */
function exportSafetensors(file: string, o: ExportCliOptions, out: string): string[] {
  const { model: dm, metadata } = readDecomposition(file, { strategy: 'fused' });
  try {
    const pre = recordedPreprocessing(metadata, file, { input: 64 });
    const opts = { input: pre.inputSize, mean: pre.mean, std: pre.std, source: { decomposition: path.resolve(file) } };
    return o.all ? exportAllExperts(dm, out, opts) : [exportExpert(dm, String(o.task), out, opts)];
  } finally {
    dm.dispose();
  }
}

const onnxName = (f: string): string => f.replace(/\.safetensors$/, '') + '.onnx';

/**
 * A deployed network's file (lorkd export's expert file, or a KF expert: CKN + TSN_t and their
 * classifier, written by the method runs) as an ONNX file.
 */
function deployedFileToOnnx(file: string, out: string): string {
  if (!existsSync(file)) throw new UserError(`${file}: expert file not found`);
  const format = loadSafetensors(file, { allowNonFinite: true }).metadata.lorkd_format;
  if (format === 'foundation') return foundationFileToOnnx(file, out);
  if (format !== KF_EXPERT_FORMAT) return expertFileToOnnx(file, out);
  const kf = loadKfExpert(file);
  try {
    const { meta } = kf;
    const bytes = networkToOnnx(
      { branches: [['ckn', kf.model.ckn.backbone], ['tsn', kf.model.tsn.backbone]], fc: kf.model.fc },
      { ...meta, model: `kf:${meta.cknModel}+${meta.tsnModel}`, classNames: meta.classNames },
    );
    return writeOnnx(out, bytes);
  } finally {
    kf.model.dispose();
  }
}

/** A foundation file as an ONNX teacher (outputs `features` and `logits`; src/export/onnx/foundation.ts). */
function foundationFileToOnnx(file: string, out: string): string {
  const { model, meta } = loadFoundation(file);
  try {
    return writeOnnx(out, foundationToOnnx(model, meta));
  } finally {
    model.dispose();
  }
}

/** ONNX files of the decomposition in `file`: the expert files are written to a temporary folder, then converted. */
function exportOnnx(file: string, o: ExportCliOptions): string[] {
  const tmp = mkdtempSync(path.join(tmpdir(), 'lorkd-export-'));
  try {
    const experts = exportSafetensors(file, o, o.all ? tmp : path.join(tmp, 'expert.safetensors'));
    return experts.map((e) => expertFileToOnnx(e, o.all ? path.join(o.out, onnxName(path.basename(e))) : o.out));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** ONNX files of a method run's deployed networks (`<run>/deployed/<task>.safetensors`, any method). */
function exportDeployedOnnx(dir: string, o: ExportCliOptions): string[] {
  const names = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
  if (o.all) return names.map((f) => deployedFileToOnnx(path.join(dir, f), path.join(o.out, onnxName(f))));
  const f = `${o.task}.safetensors`;
  if (!names.includes(f)) throw new UserError(`${dir}: no deployed network for task "${o.task}" (have: ${names.map((n) => n.replace(/\.safetensors$/, '')).join(', ') || 'none'})`);
  return [deployedFileToOnnx(path.join(dir, f), o.out)];
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description(
      'write the fused expert of one task (or all) as safetensors (torchvision names, head fc.weight/fc.bias, preprocessing in the metadata) ' +
        'or as ONNX (input "input" [N,C,S,S] preprocessed; outputs "logits" and "cam", the class activation map of the predicted class), ' +
        'or as a MONAI bundle folder with a model card (--format bundle --run DIR --task T)',
    )
    .option('--run <dir>', 'run directory holding decomposition.safetensors (or, with --format onnx, a method run\'s deployed/<task>.safetensors)')
    .option('--decomposition <file>', 'decomposition model file')
    .option('--model <file>', 'an expert file (lorkd export\'s, or a method run\'s deployed network, KF included) or a foundation file (an ONNX teacher: outputs "features" and "logits") to convert (with --format onnx)')
    .option('--task <name>', 'task to export')
    .option('--method <name>', 'with --format bundle and --run COMPARE_DIR: whose network (default lorkd)')
    .option('--all', 'export every task: --out is a folder, one <task>.safetensors (or .onnx) each')
    .addOption(new Option('--format <format>', 'file format').choices(FORMATS).default('safetensors'))
    .requiredOption('--out <path>', 'output file (a folder with --all or --format bundle)')
    .option('--json', 'print one JSON object')
    .action((o: ExportCliOptions) =>
      run(() => {
        let files: string[];
        if (o.format === 'bundle') {
          if (!o.run || !o.task || o.all || o.model || o.decomposition) throw new UserError('export --format bundle needs --run DIR and --task NAME (one task; not --all, --model or --decomposition)');
          files = writeBundle({ run: o.run, task: o.task, out: o.out, method: o.method, progress: createProgress({ quiet: !!o.json }) }).files;
        } else if (o.method) {
          throw new UserError('--method applies to --format bundle');
        } else if (o.model) {
          if (o.run || o.decomposition || o.task || o.all) throw new UserError('export --model converts one expert file: do not combine it with --run, --decomposition, --task or --all');
          if (o.format !== 'onnx') throw new UserError('export --model needs --format onnx (the file already is a safetensors expert)');
          files = [deployedFileToOnnx(o.model, o.out)];
        } else {
          if (!o.all && !o.task) throw new UserError('export needs --task NAME or --all');
          const deployed = o.run && path.join(o.run, 'deployed');
          const file = o.decomposition ?? (o.run && path.join(o.run, 'decomposition.safetensors'));
          if (!file) throw new UserError('export needs --run DIR, --decomposition FILE or --model EXPERT.safetensors');
          if (o.format === 'onnx' && !o.decomposition && !existsSync(file) && deployed && existsSync(deployed)) files = exportDeployedOnnx(deployed, o);
          else files = o.format === 'onnx' ? exportOnnx(file, o) : exportSafetensors(file, o, o.out);
        }
        emit(!!o.json, { format: o.format, files }, () => files.map((f) => `wrote ${f}`).join('\n'));
      }),
    );
}
