// The teacher of a distilling run (docs/ARCHITECTURE.md, "The teacher"): whatever file it comes
// from (a lorkd foundation in safetensors, any ONNX model), it says what it gives (pooled features
// (N, F), logits (N, C)), how its inputs are made, and its class list when known; it runs once over
// the training set to fill the teacher cache (teacher-cache.ts). trainMethod asks the teacher,
// never the file type.
import type { Tensor } from '../../tensor/index.js';
import { UserError } from '../../tensor/errors.js';
import type { Triple, TaskSuite } from '../../data/index.js';
import type { TeacherOutput } from '../methods/spec.js';

/** How the teacher's inputs are made: bilinear resize to input x input, pixel / 255, (x - mean) / std. */
export interface TeacherPreprocessing {
  input: number;
  mean: Triple;
  std: Triple;
}

/** The flags of an ONNX teacher without lorkd metadata (--teacher-input, ...) and its output names. */
export interface TeacherFlags {
  input?: number;
  mean?: number[];
  std?: number[];
  resize?: string;
  features?: string;
  logits?: string;
}

export interface Teacher {
  readonly file: string;
  /** Its architecture, as the file says it ("resnet18"; "onnx" when an ONNX file does not say). */
  readonly arch: string;
  /** What it gives. */
  readonly outputs: readonly TeacherOutput[];
  readonly preprocessing: TeacherPreprocessing;
  /** Its unified classes by task, when the file says them. */
  readonly tasks: { name: string; classNames: string[] }[] | null;
  readonly numFeatures: number | null;
  readonly numLogits: number | null;
  /** What it has, for messages ("pooled features (512) and logits (5)"). */
  readonly has: string;
  /** Added to the cache key (the chosen outputs of an ONNX file; empty for a lorkd foundation). */
  readonly cacheTag: string;
  /** Rows per forward. */
  readonly batchSize: number;
  /** The device its input batches are made on (set by place()). */
  readonly device: string;
  /** Moves it where it runs (a safetensors teacher: the run's device; ONNX: onnxruntime on the CPU). */
  place(device: string, channelsLast: boolean): void;
  /** Its outputs for a preprocessed float32 batch (B, 3, S, S), outside any scope: the caller keeps or frees them. */
  forward(x: Tensor): Promise<{ features?: Tensor; logits?: Tensor }>;
  dispose(): Promise<void>;
}

/**
 * Refuses, before any training, a teacher that lacks what the run distils from (`who`: the method
 * or --kd setting): pooled features, or logits over the suite's unified classes.
 */
export function checkTeacher(t: Teacher, needs: readonly TeacherOutput[], suite: TaskSuite, who: string): void {
  for (const need of needs) {
    if (t.outputs.includes(need)) continue;
    const what = need === 'features' ? 'pooled features (N, F)' : `logits over the suite's ${suite.totalClasses} classes`;
    const flag = need === 'features' ? '--teacher-features' : '--teacher-logits';
    throw new UserError(`${t.file} gives ${t.has}; ${who} distils from ${what}${t.cacheTag ? ` (name an output with ${flag} NAME)` : ''}`);
  }
  if (!needs.includes('logits')) return;
  if (t.tasks) {
    const mine = suite.tasks.map((x) => `${x.name}:${x.numClasses}`).join(',');
    const theirs = t.tasks.map((x) => `${x.name}:${x.classNames.length}`).join(',');
    if (mine !== theirs) throw new UserError(`${t.file} was trained on tasks ${theirs}, not ${mine} (${who} distils from its logits over the suite's classes)`);
  } else if (t.numLogits !== suite.totalClasses) {
    throw new UserError(`${t.file} gives logits over ${t.numLogits} classes, the suite has ${suite.totalClasses} (${who} distils from its logits over the suite's classes)`);
  }
}
