// Transfer (paper 4.3, Table 2): fine-tune a deployed network on a downstream data set. AdamW
// (lr 5e-5), all layers trained, a new head for the downstream classes, the network's own
// preprocessing record; optionally k training images per class. Test accuracy and AUC over
// seeds (mean and 95% interval), deployed parameters and the compression ratio.
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { finetune } from './methods/finetune.js';
import { autocast, type Precision } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { AdamW } from '../optim/index.js';
import { DataLoader, TaskSuite, type TaskData } from '../data/index.js';
import { loadTask } from '../data/medmnist.js';
import { fewShot } from '../data/image-folder.js';
import { loadPackTasks, packSource } from '../data/packed.js';
import { RunDir } from './run-dir.js';
import { train, type DataParallel } from './trainer.js';
import { evalExpert } from './evaluate.js';
import type { Progress } from './progress.js';
import { resolveSource, type SourceOptions, type TransferSource } from './transfer-source.js';
import type { ImageClassifier } from '../models/classifier.js';

/** What is fine-tuned on what: everything but the starting point. */
export interface TransferSpec {
  /** Downstream data: an ImageFolder root, a MedMNIST-format .npz (or a bundled name), or a pack's task (`pack:DIR[#TASK]`). */
  data: string;
  /** Training images per class (null: the whole training split). */
  shots: number | null;
  epochs: number;
  lr: number;
  weightDecay: number;
  batch: number;
  seeds: number[];
  /** A flat image folder's stratified split (fractions of each class) and its seed. */
  valSplit: number;
  testSplit: number;
  splitSeed: number;
  channelsLast: boolean;
}

export const TRANSFER_DEFAULTS: Omit<TransferSpec, 'data'> = {
  shots: null, epochs: 50, lr: 5e-5, weightDecay: 1e-2, batch: 32, seeds: [0], valSplit: 0.1, testSplit: 0.2, splitSeed: 0, channelsLast: true,
};

/** One seed's fine-tuning. */
export interface TransferRun {
  seed: number;
  accuracy: number;
  auc: number;
  n_test: number;
  n_train: number;
  epochs: number;
  final_loss: number | null;
  seconds: number;
}

/** Mean, 95% t-interval (null with one value) and the values. */
export interface Interval {
  mean: number;
  ci95: [number, number] | null;
  values: number[];
}

export interface TransferResult {
  source: { kind: string; file: string | null; model: string; input_size: number; mean: number[]; std: number[] };
  data: { path: string; name: string; classes: string[]; train: number; val: number; test: number };
  shots: number | null;
  epochs: number;
  lr: number;
  batch: number;
  runs: TransferRun[];
  accuracy: Interval;
  auc: Interval;
  /** Parameters of the fine-tuned network (backbone + the downstream head). */
  params_deployed: number;
  params_foundation: number | null;
  foundation_file: string | null;
  /** params_deployed / params_foundation (null when the foundation is unknown). */
  compression_ratio: number | null;
  /** This invocation's wall time (finished seeds read back take none). */
  wall_s: number;
  /** The seeds' own fine-tuning seconds, summed (kept when they are read back). */
  run_seconds: number;
}

// Two-sided 95% Student t quantiles t_{0.975, df}, df = 1..30 (beyond: the normal's 1.96).
const T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];

/** Mean and 95% t-interval mean +- t_{0.975, n-1} s / sqrt(n) of the values. */
export function interval(values: number[]): Interval {
  const n = values.length;
  const mean = values.reduce((a, v) => a + v, 0) / Math.max(n, 1);
  if (n < 2) return { mean, ci95: null, values };
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
  const h = (T975[n - 2] ?? 1.96) * (sd / Math.sqrt(n));
  return { mean, ci95: [mean - h, mean + h], values };
}

/**
 * A pack's task as downstream data: `pack:DIR` or DIR (a pack of one task), `pack:DIR#TASK` or
 * DIR#TASK (one task of several). A JPEG pack's rows are delivered at `input` (the network's size).
 */
function downstreamPackTask(data: string, input: number | undefined): TaskData | null {
  const hash = data.lastIndexOf('#');
  const dir = packSource(hash > 0 ? data.slice(0, hash) : data);
  if (dir === null) return null;
  const tasks = loadPackTasks(dir, { input });
  if (hash > 0) {
    const name = data.slice(hash + 1);
    const t = tasks.find((x) => x.name === name);
    if (!t) throw new UserError(`${data}: the pack has no task '${name}' (it has: ${tasks.map((x) => x.name).join(', ')})`);
    return t;
  }
  if (tasks.length !== 1) throw new UserError(`${data}: the pack holds ${tasks.length} tasks (${tasks.map((x) => x.name).join(', ')}); name one: ${data}#TASK`);
  return tasks[0]!;
}

/**
 * The downstream task: an image folder (seeded split when flat), a MedMNIST-format npz, or a
 * pack's task (streamed; a JPEG pack's rows at `input`).
 */
export function loadDownstream(spec: Pick<TransferSpec, 'data' | 'valSplit' | 'testSplit' | 'splitSeed'>, input?: number): TaskData {
  const d = downstreamPackTask(spec.data, input) ?? loadTask(spec.data, { valSplit: spec.valSplit, testSplit: spec.testSplit, splitSeed: spec.splitSeed });
  if (d.splits.test.n === 0) throw new UserError(`${spec.data}: the downstream data has no test images`);
  if (d.classNames.length < 2) throw new UserError(`${spec.data}: the downstream data needs at least 2 classes, got ${d.classNames.length}`);
  return d;
}

function checkSpec(s: TransferSpec): void {
  if (!(s.lr > 0)) throw new UserError(`--lr must be positive, got ${s.lr}`);
  if (!(s.weightDecay >= 0)) throw new UserError(`weight decay must be >= 0, got ${s.weightDecay}`);
  if (s.seeds.length === 0) throw new UserError('--seeds needs at least one seed');
  if (new Set(s.seeds).size !== s.seeds.length) throw new UserError(`--seeds lists a seed twice: ${s.seeds.join(',')}`);
}

export interface TransferRunOptions {
  progress: Progress;
  resume?: boolean;
  /** Data parallelism under `lorkd launch` (absent: one process). */
  dist?: DataParallel | null;
  /** Device and autocast precision of the fine-tuning and its evaluation (default cpu, fp32). */
  device?: string;
  precision?: Precision;
}

/** The part of a spec and source that must match when a run is resumed. */
function runKey(spec: TransferSpec, src: TransferSource): Record<string, unknown> {
  const { seeds: _seeds, ...rest } = spec;
  return { ...rest, data: path.resolve(spec.data), source: src.file ? path.resolve(src.file) : 'scratch', model: src.model, input: src.inputSize };
}

/** Fine-tunes one seed in `dir` (resumable through the trainer's checkpoint); returns its run and the network's parameter count. */
async function transferSeed(src: TransferSource, data: TaskData, spec: TransferSpec, seed: number, dir: string, o: TransferRunOptions): Promise<{ run: TransferRun; params: number }> {
  const run = RunDir.open(dir, { resume: true, marker: 'transfer.ckpt.safetensors' });
  if (run.has('result.json')) return run.readJson<{ run: TransferRun; params: number }>('result.json');
  const t0 = performance.now();
  const task = spec.shots === null ? data : fewShot(data, spec.shots, seed);
  const suite = new TaskSuite([task]);
  const tf = { size: src.inputSize, mean: src.mean, std: src.std, device: o.device };
  const model = src.build(task.classNames.length, seed);
  try {
    const cl = spec.channelsLast;
    const device = o.device ?? 'cpu';
    const precision = o.precision ?? 'fp32';
    model.to(device);
    if (cl) model.toChannelsLast();
    const opt = new AdamW(model.parameters(), { lr: spec.lr, weightDecay: spec.weightDecay });
    const shard = o.dist ? { rank: o.dist.group.rank, world: o.dist.group.worldSize } : undefined;
    const loader = new DataLoader(suite, { split: 'train', batchSize: spec.batch, seed, flip: true, shard, ...tf });
    const r = await train({
      name: 'transfer', run, method: finetune(model, cl), optimizer: opt, scheduler: null, loader, epochs: spec.epochs, resume: !!o.resume || run.has('transfer.ckpt.safetensors'), progress: o.progress, dist: o.dist, device, precision,
    });
    opt.dispose();
    const test = new DataLoader(suite, { split: 'test', batchSize: 256, shuffle: false, ...tf });
    // evalExpert only runs eval() and forward(): a KF pair evaluates like a plain classifier.
    const res = autocast(device, precision, () => evalExpert(model as ImageClassifier, 0, suite, test, cl));
    const out = {
      run: {
        seed, accuracy: res.accuracy, auc: res.auc, n_test: res.n, n_train: task.splits.train.n, epochs: spec.epochs,
        final_loss: r.history.at(-1)?.loss ?? null, seconds: (performance.now() - t0) / 1000,
      },
      params: model.numParameters(),
    };
    run.writeJson('result.json', out);
    return out;
  } finally {
    model.dispose();
  }
}

/**
 * Fine-tunes `src` on spec.data once per seed, each seed in `<out>/seed-<s>/` (a finished seed is
 * read back, an interrupted one continues from its last epoch), and writes `<out>/transfer.json`.
 */
export async function runTransfer(src: TransferSource, spec: TransferSpec, out: string, o: TransferRunOptions, data?: TaskData): Promise<TransferResult> {
  checkSpec(spec);
  const t0 = performance.now();
  const dir = RunDir.open(out, { resume: o.resume, marker: 'transfer.json' });
  const key = runKey(spec, src);
  if (dir.has('spec.json')) {
    const old = JSON.stringify(dir.readJson('spec.json'));
    if (old !== JSON.stringify(key)) throw new UserError(`${dir.root} holds a transfer with other settings (${dir.file('spec.json')}); choose another --out`);
  } else dir.writeJson('spec.json', key);
  const d = data ?? loadDownstream(spec, src.inputSize);
  const label = src.file ? path.basename(src.file) : `scratch ${src.model}`;
  const runs: TransferRun[] = [];
  let params = 0;
  for (const seed of spec.seeds) {
    o.progress.log(`[transfer] ${label} -> ${d.name}, seed ${seed}${spec.shots !== null ? `, ${spec.shots} shots per class` : ''}`);
    const r = await transferSeed(src, d, spec, seed, path.join(dir.root, `seed-${seed}`), o);
    o.progress.log(`[transfer] seed ${seed}: test accuracy ${r.run.accuracy.toFixed(4)}, AUC ${r.run.auc.toFixed(4)} (${r.run.seconds.toFixed(1)} s)`);
    runs.push(r.run);
    params = r.params;
  }
  const result: TransferResult = {
    source: { kind: src.kind, file: src.file, model: src.model, input_size: src.inputSize, mean: [...src.mean], std: [...src.std] },
    data: { path: spec.data, name: d.name, classes: d.classNames, train: d.splits.train.n, val: d.splits.val.n, test: d.splits.test.n },
    shots: spec.shots, epochs: spec.epochs, lr: spec.lr, batch: spec.batch,
    runs,
    accuracy: interval(runs.map((r) => r.accuracy)),
    auc: interval(runs.map((r) => r.auc)),
    params_deployed: params,
    params_foundation: src.foundationParams,
    foundation_file: src.foundationFile,
    compression_ratio: src.foundationParams ? params / src.foundationParams : null,
    wall_s: (performance.now() - t0) / 1000,
    run_seconds: runs.reduce((a, r) => a + r.seconds, 0),
  };
  dir.writeJson('transfer.json', result);
  return result;
}

/** One starting point of a study: a label (e.g. the method) and what `lorkd transfer --from` takes. */
export interface StudySource extends SourceOptions {
  label: string;
}

/**
 * Table 2 of a comparison: every source fine-tuned on the downstream set of `spec`, over its
 * seeds, each in `<out>/<label>/` (resumable as runTransfer). The downstream data is loaded once.
 * Returns the results by label, in the order given.
 */
export async function transferStudy(spec: TransferSpec, sources: readonly StudySource[], o: TransferRunOptions & { out: string }): Promise<{ label: string; result: TransferResult }[]> {
  checkSpec(spec);
  const seen = new Set<string>();
  for (const s of sources) {
    if (!/^[A-Za-z0-9._-]+$/.test(s.label)) throw new UserError(`transfer study: label "${s.label}" must be letters, digits, '.', '_' or '-'`);
    if (seen.has(s.label)) throw new UserError(`transfer study: label "${s.label}" appears twice`);
    seen.add(s.label);
  }
  // Loaded once, except a pack's task: each source reads it at its own input size.
  const data = downstreamPackTask(spec.data, undefined) ? undefined : loadDownstream(spec);
  const out: { label: string; result: TransferResult }[] = [];
  for (const s of sources) {
    const src = resolveSource(s);
    out.push({ label: s.label, result: await runTransfer(src, spec, path.join(o.out, s.label), o, data) });
  }
  return out;
}

/**
 * A spec's folder name in a study: the downstream data's name, the shots (`k5`, or `kall`) and the
 * epochs (`e20`), then every other setting that differs from TRANSFER_DEFAULTS
 * (`mednist-k5-e20`, `retinamnist-kall-e50-lr0.0001`). Specs that differ get different names,
 * except for data sets of the same name in different folders (their spec.json then refuses the mix).
 */
export function specTag(spec: TransferSpec): string {
  const d = TRANSFER_DEFAULTS;
  const name = path.basename(path.resolve(spec.data)).replace(/\.npz$/i, '');
  const extra: [string, number, number][] = [
    ['lr', spec.lr, d.lr], ['wd', spec.weightDecay, d.weightDecay], ['batch', spec.batch, d.batch],
    ['val', spec.valSplit, d.valSplit], ['test', spec.testSplit, d.testSplit], ['split', spec.splitSeed, d.splitSeed],
  ];
  const parts = [name, `k${spec.shots ?? 'all'}`, `e${spec.epochs}`, ...extra.filter(([, v, def]) => v !== def).map(([k, v]) => `${k}${v}`), ...(spec.channelsLast ? [] : ['nchw'])];
  return parts.join('-').replace(/[^A-Za-z0-9._-]/g, '_');
}

/**
 * Parses a `--transfer SPEC` string: `DATA[:key=value]...` with keys shots, epochs, lr, wd, batch,
 * val-split, test-split, split-seed (e.g. `data/mednist:shots=5:epochs=30`, `pack:DIR#TASK:shots=5`); the rest from
 * TRANSFER_DEFAULTS and `seeds`.
 */
export function parseTransferSpec(text: string, seeds: number[] = TRANSFER_DEFAULTS.seeds): TransferSpec {
  // A pack source keeps its own colon: `pack:DIR[#TASK][:key=value]...`.
  const parts = text.split(':');
  if (parts[0] === 'pack' && parts.length > 1) parts.splice(0, 2, `pack:${parts[1]}`);
  const [data, ...pairs] = parts;
  if (!data) throw new UserError(`--transfer "${text}": expected DATA[:key=value]...`);
  const spec: TransferSpec = { ...TRANSFER_DEFAULTS, data, seeds: seeds.slice() };
  const num = (k: string, v: string, int: boolean): number => {
    const n = Number(v);
    if (v === '' || !Number.isFinite(n) || (int && !(Number.isInteger(n) && n >= 1))) throw new UserError(`--transfer "${text}": ${k} must be ${int ? 'a positive integer' : 'a number'}, got "${v}"`);
    return n;
  };
  for (const p of pairs) {
    const [k, v = ''] = p.split('=', 2) as [string, string?];
    if (k === 'shots') spec.shots = num(k, v, true);
    else if (k === 'epochs') spec.epochs = num(k, v, true);
    else if (k === 'batch') spec.batch = num(k, v, true);
    else if (k === 'lr') spec.lr = num(k, v, false);
    else if (k === 'wd') spec.weightDecay = num(k, v, false);
    else if (k === 'val-split') spec.valSplit = num(k, v, false);
    else if (k === 'test-split') spec.testSplit = num(k, v, false);
    else if (k === 'split-seed') spec.splitSeed = num(k, v, false);
    else throw new UserError(`--transfer "${text}": unknown key "${k}" (keys: shots, epochs, lr, wd, batch, val-split, test-split, split-seed)`);
  }
  return spec;
}
