// Fixtures of the serve tests: small decomposition checkpoints with random weights (every expert,
// head and BatchNorm randomised, so departments really differ), their fused expert files, PNG/JPEG
// images from the bundled MedMNIST test splits, and reference predictions computed by
// `lorkd predict`'s code path on the fused expert files (independent of the service).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';
import { manualSeed } from '../src/tensor/index.js';
import { DecompositionModel, saveDecomposition, readDecomposition, type TaskSpec } from '../src/lorkd/index.js';
import { exportAllExperts } from '../src/export/export-experts.js';
import { predict } from '../src/export/predict.js';
import { loadMedMnist } from '../src/data/medmnist.js';
import { randomizeDecomposition } from './helpers/random-decomposition.js';
import { BIN, REPO, lorkdEnv } from './helpers/pipeline.js';

export const MODEL = 'shufflenet_v2_x0_5';
export const INPUT = 32;
export const TASKS: TaskSpec[] = [
  { name: 'breast', classNames: ['malignant', 'benign'] },
  { name: 'pneumonia', classNames: ['normal', 'pneumonia'] },
  { name: 'retina', classNames: ['0', '1', '2', '3', '4'] },
];
const SOURCES = ['breastmnist', 'pneumoniamnist', 'retinamnist'];
export const MEAN = [0.5, 0.4, 0.3];
export const STD = [0.25, 0.3, 0.35];

/** A decomposition checkpoint with random weights; returns its path. */
export function writeDecomposition(file: string, seed: number, tasks: TaskSpec[] = TASKS): string {
  manualSeed(seed);
  const dm = new DecompositionModel({ model: MODEL, tasks, rank: 4, loraAlpha: 8, strategy: 'fused' });
  try {
    randomizeDecomposition(dm, { headStd: 0.5 });
    saveDecomposition(file, dm, { input_size: String(INPUT), mean: JSON.stringify(MEAN), std: JSON.stringify(STD) });
    return file;
  } finally {
    dm.dispose();
  }
}

/** The fused expert files of a checkpoint, `<dir>/<task>.safetensors`, by task name (read back from the file the service loads). */
export function writeExperts(checkpoint: string, dir: string): Map<string, string> {
  const dm = readDecomposition(checkpoint, { strategy: 'fused' }).model;
  try {
    mkdirSync(dir, { recursive: true });
    const files = exportAllExperts(dm, dir, { input: INPUT, mean: MEAN, std: STD });
    return new Map(dm.config.tasks.map((t, i) => [t.name, files[i]!]));
  } finally {
    dm.dispose();
  }
}

export interface TestImage {
  task: string;
  /** PNG or JPEG bytes. */
  bytes: Uint8Array;
  /** The same image as a file (for the reference predictions). */
  file: string;
  type: string;
}

/** RGBA bytes of a CHW uint8 image. */
function rgba(chw: Uint8Array, h: number, w: number): Buffer {
  const out = Buffer.alloc(h * w * 4);
  for (let p = 0; p < h * w; p++) {
    out[4 * p] = chw[p]!;
    out[4 * p + 1] = chw[h * w + p]!;
    out[4 * p + 2] = chw[2 * h * w + p]!;
    out[4 * p + 3] = 255;
  }
  return out;
}

/**
 * `perTask` test images of each task (from the bundled MedMNIST test split of the task's
 * position), written under `dir`; every third one is a JPEG, the rest PNGs.
 */
export function writeImages(dir: string, perTask: number, tasks: TaskSpec[] = TASKS): TestImage[] {
  mkdirSync(dir, { recursive: true });
  const out: TestImage[] = [];
  tasks.forEach((t, ti) => {
    const s = loadMedMnist(SOURCES[ti % SOURCES.length]!).splits.test;
    const per = 3 * s.height * s.width;
    for (let i = 0; i < perTask; i++) {
      const k = (i * 7 + ti) % s.n;
      const data = rgba(s.images.subarray(k * per, (k + 1) * per), s.height, s.width);
      const isJpeg = i % 3 === 2;
      const bytes = isJpeg
        ? new Uint8Array(jpeg.encode({ data, width: s.width, height: s.height }, 95).data)
        : new Uint8Array(PNG.sync.write({ width: s.width, height: s.height, data } as unknown as PNG));
      const file = path.join(dir, `${t.name}-${i}.${isJpeg ? 'jpg' : 'png'}`);
      writeFileSync(file, bytes);
      out.push({ task: t.name, bytes, file, type: isJpeg ? 'image/jpeg' : 'image/png' });
    }
  });
  return out;
}

/** Reference probabilities (by class name) of each image, from its task's fused expert file. */
export function references(experts: Map<string, string>, images: TestImage[]): Map<TestImage, Record<string, number>> {
  const out = new Map<TestImage, Record<string, number>>();
  for (const [task, file] of experts) {
    const mine = images.filter((im) => im.task === task);
    if (!mine.length) continue;
    predict(file, mine.map((im) => im.file), { batchSize: 1 }).forEach((p, i) => out.set(mine[i]!, p.probs));
  }
  return out;
}

/** Largest absolute difference between two probability records over the same classes. */
export function maxDiff(a: Record<string, number>, b: Record<string, number>): number {
  const keys = Object.keys(b);
  if (Object.keys(a).join() !== keys.join()) return Infinity;
  return Math.max(...keys.map((k) => Math.abs(a[k]! - b[k]!)));
}

/** POSTs an image to a running service. */
export async function post(url: string, im: Pick<TestImage, 'task' | 'bytes' | 'type'>, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const r = await fetch(`${url}/v1/predict?task=${encodeURIComponent(im.task)}`, { method: 'POST', body: im.bytes, headers: { 'content-type': im.type, ...headers } });
  const text = await r.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: r.status, body, headers: r.headers };
}

/** A `lorkd serve --port 0 --json ...` child process, once it listens. */
export interface ServeProcess {
  child: ChildProcess;
  url: string;
  port: number;
  tasks: string[];
  stderr(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/** Starts `lorkd serve --port 0 --json ARGS` (with `env` added) and waits for its JSON line (kill the child when done). */
export async function startServeProcess(args: string[], env: Record<string, string> = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--json', ...args], { env: lorkdEnv(env), cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const first = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', () => reject(new Error(`serve exited early: ${stderr}`)));
  });
  const { url, port, tasks } = JSON.parse(first) as { url: string; port: number; tasks: string[] };
  return { child, url, port, tasks, stderr: () => stderr, exited };
}
