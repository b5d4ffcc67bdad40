// Inference with an exported expert: preprocess inputs exactly as the file's metadata says, then
// softmax class probabilities. Inputs are MedMNIST-format .npz files (one split), image files
// (PNG, JPEG, DICOM) and folders of them (walked recursively; class subfolders named after the
// expert's classes give labels). predictInputs keeps going past a bad file and reports it.
import { readdirSync, realpathSync, statSync } from 'node:fs';
import { readAt, withFile } from '../io/read.js';
import path from 'node:path';
import { InferencePlan } from '../infer/index.js';
import { type Tensor, softmax, tensor, tidy, autocast, hostToDevice, type Precision } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { type Split, SPLITS } from '../data/dataset.js';
import { loadMedMnist } from '../data/medmnist.js';
import { loadPackTasks, packSource } from '../data/packed.js';
import { type SuiteSplit, taskSplit } from '../data/suite.js';
import { gatherImages } from '../data/gather.js';
import { IMAGE_EXTENSIONS, readImage } from '../data/images.js';
import { imageToInput } from '../data/image-input.js';
import { isDicom } from '../data/dicom.js';
import { imagesToTensor, type Triple } from '../data/transforms.js';
import type { ImageClassifier } from '../models/classifier.js';
import { type ExpertMeta, loadExpertFile } from './expert-file.js';
import { loadOnnxExpert, softmaxRows } from './onnx/runtime.js';

/** The prediction for one image. */
export interface Prediction {
  /** The input it came from: an image file, or the .npz file. */
  input: string;
  /** Sample index within the .npz split (absent for image files). */
  index?: number;
  /** Predicted class name (largest probability; the first on ties). */
  class: string;
  /** Probability of every class, by class name (they sum to 1). */
  probs: Record<string, number>;
  /** True class name, when the input has labels (.npz, or a class subfolder of a folder input). */
  label?: string;
}

/** An input that could not be predicted, and why (one line). */
export interface PredictFailure {
  input: string;
  error: string;
}

export interface PredictOptions {
  /** Split of .npz inputs (default 'test'). */
  split?: Split;
  /** Predict at most this many images in all (in input order). */
  limit?: number;
  /** Images per forward pass (default 256). */
  batchSize?: number;
  /** Where the expert runs (default cpu): inputs are made on the host and copied over per batch. */
  device?: string;
  /** Autocast precision of the forward (default fp32). */
  precision?: Precision;
}

export interface PredictInputsOptions extends PredictOptions {
  /** Called once per bad input, as it is met. */
  onFailure?: (f: PredictFailure) => void;
  /** Called after every batch with the images done and the images in all (an upper bound with --limit). */
  onProgress?: (done: number, total: number) => void;
}

export interface PredictReport {
  predictions: Prediction[];
  failures: PredictFailure[];
  /** Files in folder inputs that are neither images nor DICOM (not counted as failures). */
  skipped: number;
}

/**
 * uint8 (n, 3, h, w) images -> the model's input: resized bilinearly to the expert's input size
 * (unless already that size), scaled to [0, 1], normalised with its mean and std.
 */
export function preprocess(meta: ExpertMeta, images: Uint8Array, n: number, height: number, width: number): Tensor {
  checkChannels(meta);
  return imagesToTensor(images, n, height, width, { size: meta.inputSize, mean: meta.mean as unknown as Triple, std: meta.std as unknown as Triple });
}

function checkChannels(meta: ExpertMeta): void {
  if (meta.channels !== 3) throw new UserError(`expert "${meta.task}" takes ${meta.channels}-channel input; predict supports 3-channel experts`);
}

const isNpz = (f: string): boolean => path.extname(f).toLowerCase() === '.npz';

/** Softmax probabilities of a preprocessed batch, one row per image, through the model's inference path. */
function probsOf(model: ImageClassifier, plan: InferencePlan, x: () => Tensor): Float32Array[] {
  const p = plan.run(() => tidy(() => softmax(model.forward(x().contiguous('channels_last')), 1).toArray() as Float32Array));
  const n = p.length / model.numClasses;
  return Array.from({ length: n }, (_, i) => p.slice(i * model.numClasses, (i + 1) * model.numClasses));
}

/**
 * Class probabilities (n rows of numClasses) of uint8 (n, 3, h, w) images, in batches of
 * `batchSize`, each under tidy, through the model's inference path (src/infer).
 */
export function predictProbs(model: ImageClassifier, meta: ExpertMeta, images: Uint8Array, n: number, height: number, width: number, batchSize = 256): Float32Array[] {
  const out: Float32Array[] = [];
  const per = 3 * height * width;
  const plan = InferencePlan.of(model);
  try {
    for (let b = 0; b < n; b += batchSize) {
      const m = Math.min(batchSize, n - b);
      out.push(...probsOf(model, plan, () => preprocess(meta, images.subarray(b * per, (b + m) * per), m, height, width)));
    }
  } finally {
    plan.dispose();
  }
  return out;
}

/** True when the file starts with the DICOM Part 10 signature (read from its first 132 bytes). */
function hasDicomSignature(file: string): boolean {
  try {
    return withFile(file, (f) => isDicom(readAt(file, f, 0, 132)));
  } catch {
    return false;
  }
}

/** One image file to predict, with its label when a class subfolder gives one. */
interface FileItem {
  file: string;
  label?: number;
}

/**
 * The image files under folder `dir`, recursively, sorted by path: files with a PNG/JPEG/DICOM
 * extension, and other files that carry the DICOM signature (DICOM files often have no extension).
 * When every direct subfolder of `dir` is named after a class of the expert, files under
 * subfolder c are labelled c.
 */
function walkFolder(dir: string, classNames: string[], report: PredictReport): FileItem[] {
  const files: string[] = [];
  const seen = new Set<string>();
  const walk = (d: string): void => {
    // A folder reached twice (a symbolic link back up the tree) is read once.
    let real: string;
    try {
      real = realpathSync(d);
    } catch {
      real = d;
    }
    if (seen.has(real)) return;
    seen.add(real);
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch (e) {
      report.failures.push({ input: d, error: `${d}: cannot read folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` });
      return;
    }
    for (const n of names) {
      if (n.startsWith('.')) continue;
      const p = path.join(d, n);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        if (IMAGE_EXTENSIONS.includes(path.extname(n).toLowerCase()) || hasDicomSignature(p)) files.push(p);
        else report.skipped++;
      }
    }
  };
  walk(dir);
  let subs: string[] = [];
  try {
    subs = readdirSync(dir).filter((n) => !n.startsWith('.') && statSync(path.join(dir, n)).isDirectory());
  } catch {
    // reported by walk
  }
  const labelled = subs.length > 0 && subs.every((s) => classNames.includes(s));
  return files.map((file) => {
    if (!labelled) return { file };
    const top = path.relative(dir, file).split(path.sep)[0]!;
    return { file, label: classNames.indexOf(top) };
  });
}

function isFolder(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Checks the options; returns them with defaults. */
function checkOptions(opts: PredictOptions): { split: Split; limit: number; batchSize: number } {
  const split = opts.split ?? 'test';
  if (!SPLITS.includes(split)) throw new UserError(`split must be one of ${SPLITS.join(', ')}, got "${split}"`);
  const limit = opts.limit ?? Infinity;
  if (!(limit === Infinity || (Number.isInteger(limit) && limit >= 1))) throw new UserError(`limit must be a positive integer, got ${limit}`);
  const batchSize = opts.batchSize ?? 256;
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new UserError(`batch size must be a positive integer, got ${batchSize}`);
  return { split, limit, batchSize };
}

/** One batch of preprocessed images (owned by the consumer: dispose it) and where each row came from. */
interface Batch {
  x: Tensor;
  rows: { input: string; index?: number; label?: number }[];
}

/** Collects failures (each reported through onFailure as it is met) and builds prediction rows. */
class Run {
  readonly report: PredictReport = { predictions: [], failures: [], skipped: 0 };
  constructor(
    readonly meta: ExpertMeta,
    readonly opts: PredictInputsOptions,
  ) {}

  fail(input: string, e: unknown): void {
    if (!(e instanceof UserError)) throw e;
    const f = { input, error: e.message.split('\n')[0]! };
    this.report.failures.push(f);
    this.opts.onFailure?.(f);
  }

  /** Appends the predictions of a batch from its probabilities (row-major, one row per image). */
  add(batch: Batch, probs: ArrayLike<number>): void {
    const names = this.meta.classNames;
    const k = names.length;
    batch.rows.forEach((r, i) => {
      let best = 0;
      for (let j = 1; j < k; j++) if (probs[i * k + j]! > probs[i * k + best]!) best = j;
      this.report.predictions.push({
        input: r.input,
        ...(r.index !== undefined ? { index: r.index } : {}),
        class: names[best]!,
        probs: Object.fromEntries(names.map((c, j) => [c, probs[i * k + j]!])),
        ...(r.label !== undefined ? { label: names[r.label]! } : {}),
      });
    });
  }
}

/**
 * The preprocessed batches of `inputs` in input order, at most `limit` images: .npz splits in
 * slices of batchSize, image files (folders expanded) gathered batchSize at a time. A bad input is
 * reported to `run` and skipped. The consumer must take each batch's predictions (run.add) before
 * asking for the next one, so that the limit counts them.
 */
function* batches(run: Run, inputs: string[], o: { split: Split; limit: number; batchSize: number }): Generator<Batch> {
  const { meta, report } = run;
  checkChannels(meta);
  const names = meta.classNames;
  type Item = { npz: string } | { pack: string } | FileItem;
  const items: Item[] = [];
  for (const input of inputs) {
    const pack = packSource(input);
    if (pack !== null) items.push({ pack });
    else if (isNpz(input) && !isFolder(input)) items.push({ npz: input });
    else if (isFolder(input)) {
      const found = walkFolder(input, names, report);
      if (found.length === 0) run.fail(input, new UserError(`${input}: no PNG, JPEG or DICOM files in this folder`));
      items.push(...found);
    } else items.push({ file: input });
  }
  const total = Math.min(o.limit, items.reduce((n, it) => n + ('npz' in it || 'pack' in it ? 0 : 1), 0));
  // Image files are made into model inputs as they are read (image-input.ts: O(S^2) for any
  // source size), so a batch holds S x S inputs, never the full-size images.
  let pending: { item: FileItem; input: Float32Array }[] = [];
  const room = (): number => o.limit - report.predictions.length - pending.length;
  function* flush(): Generator<Batch> {
    if (!pending.length) return;
    const imgs = pending;
    pending = [];
    const S = meta.inputSize;
    const all = new Float32Array(imgs.length * 3 * S * S);
    imgs.forEach(({ input }, i) => all.set(input, i * input.length));
    const x = tensor(all, [imgs.length, 3, S, S]);
    yield { x, rows: imgs.map(({ item }) => ({ input: item.file, ...(item.label !== undefined ? { label: item.label } : {}) })) };
    run.opts.onProgress?.(report.predictions.length, total);
  }
  for (const it of items) {
    if (room() <= 0) break;
    if ('pack' in it) {
      yield* flush();
      yield* packBatches(run, it.pack, o, room);
      continue;
    }
    if ('npz' in it) {
      yield* flush();
      let s;
      try {
        s = loadMedMnist(it.npz).splits[o.split];
        const n = Math.min(s.n, room());
        const bad = s.labels.subarray(0, n).findIndex((l) => l >= names.length);
        if (bad >= 0) throw new UserError(`${it.npz}: ${o.split} label ${s.labels[bad]} (sample ${bad}) is out of range for expert "${meta.task}" with ${names.length} classes`);
      } catch (e) {
        run.fail(it.npz, e);
        continue;
      }
      const n = Math.min(s.n, room());
      const per = 3 * s.height * s.width;
      for (let b = 0; b < n; b += o.batchSize) {
        const m = Math.min(o.batchSize, n - b);
        const x = preprocess(meta, s.images.subarray(b * per, (b + m) * per), m, s.height, s.width);
        yield { x, rows: Array.from({ length: m }, (_, k) => ({ input: it.npz, index: b + k, label: s.labels[b + k]! })) };
      }
      continue;
    }
    try {
      pending.push({ item: it, input: imageToInput(readImage(it.file), meta) });
    } catch (e) {
      run.fail(it.file, e);
    }
    if (pending.length >= o.batchSize) yield* flush();
  }
  yield* flush();
}

/**
 * The `split` of the expert's task in a pack (or its only task), streamed a batch at a time
 * (src/data/stream.ts; JPEG rows centre-cropped to the expert's input): memory holds one batch.
 */
function* packBatches(run: Run, dir: string, o: { split: Split; batchSize: number }, room: () => number): Generator<Batch> {
  const { meta } = run;
  let s: SuiteSplit;
  try {
    const tasks = loadPackTasks(dir, { input: meta.inputSize });
    const task = tasks.find((t) => t.name === meta.task) ?? (tasks.length === 1 ? tasks[0] : undefined);
    if (!task) throw new UserError(`${dir}: the pack has no task '${meta.task}' (it has ${tasks.map((t) => t.name).join(', ')})`);
    if (task.classNames.length > meta.classNames.length) throw new UserError(`${dir}: task '${task.name}' has ${task.classNames.length} classes, expert "${meta.task}" ${meta.classNames.length}`);
    s = taskSplit(task, o.split);
  } catch (e) {
    run.fail(dir, e);
    return;
  }
  for (let b = 0; b < s.n && room() > 0; b += o.batchSize) {
    const m = Math.min(o.batchSize, s.n - b, room());
    const idx = Int32Array.from({ length: m }, (_, k) => b + k);
    const x = preprocess(meta, gatherImages(s, idx), m, s.heights[0]!, s.widths[0]!);
    yield { x, rows: Array.from(idx, (i) => ({ input: dir, index: i, label: s.local[i]! })) };
  }
}

/**
 * Runs the expert in `file` on `inputs`: MedMNIST-format .npz files (the `split` of each; its
 * labels are reported as `label`), packs (`pack:DIR` or the folder: the `split` of the expert's
 * task, streamed), image files (PNG, JPEG or DICOM, any size; resized to the
 * expert's input) and folders of them. Returns the predictions in input order (at most `limit`)
 * and every input that failed (unreadable, corrupt, unsupported), each with a one-line reason;
 * the others are predicted all the same. A bad expert file or bad options throw a UserError.
 */
export function predictInputs(file: string, inputs: string[], opts: PredictInputsOptions = {}): PredictReport {
  const o = checkOptions(opts);
  if (inputs.length === 0) throw new UserError('no inputs given');
  const { model, meta } = loadExpertFile(file);
  let plan: InferencePlan | null = null;
  try {
    const device = opts.device ?? 'cpu';
    const precision = opts.precision ?? 'fp32';
    model.to(device);
    plan = InferencePlan.of(model);
    const run = new Run(meta, opts);
    for (const b of batches(run, inputs, o)) {
      try {
        const x = () => hostToDevice(b.x, device).contiguous('channels_last');
        run.add(b, plan.run(() => tidy(() => softmax(autocast(device, precision, () => model.forward(x())).float(), 1).toArray() as Float32Array)));
      } finally {
        b.x.dispose();
      }
    }
    return run.report;
  } finally {
    plan?.dispose();
    model.dispose();
  }
}

/**
 * predictInputs with an ONNX file written by `lorkd export --format onnx`, run by
 * onnxruntime-node (preprocessing from its metadata_props, softmax of its `logits`).
 */
export async function predictInputsOnnx(file: string, inputs: string[], opts: PredictInputsOptions = {}): Promise<PredictReport> {
  const o = checkOptions(opts);
  if (inputs.length === 0) throw new UserError('no inputs given');
  const expert = await loadOnnxExpert(file);
  try {
    const run = new Run(expert.meta, opts);
    for (const b of batches(run, inputs, o)) {
      try {
        run.add(b, softmaxRows(await expert.logits(b.x), expert.meta.classNames.length));
      } finally {
        b.x.dispose();
      }
    }
    return run.report;
  } finally {
    await expert.release();
  }
}

/**
 * predictInputs that throws the first failure (a UserError naming the input) instead of going on;
 * returns the predictions.
 */
export function predict(file: string, inputs: string[], opts: PredictOptions = {}): Prediction[] {
  const r = predictInputs(file, inputs, {
    ...opts,
    onFailure: (f) => {
      throw new UserError(f.error);
    },
  });
  return r.predictions;
}
