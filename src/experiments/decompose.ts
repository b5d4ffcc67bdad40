// Decomposition training (paper 3.3): the decomposition model learns from the frozen foundation
// model with L = (1/B) sum_b [CE(y_b, h_t(b)) + beta * alpha^2 * KL(teacher || student)].
//   --kd feature (released code): teacher pooled features -> trainable Linear -> softmax(./alpha)
//     against softmax(student pooled features / alpha).
//   --kd logits: teacher unified-head logits restricted to the sample's task classes against the
//     task head, both at temperature alpha.
//   --kd none: CE only.
import type { DecompositionModel } from '../lorkd/decomposition.js';
import type { StrategyOption } from '../lorkd/strategies.js';
import type { TaskSuite } from '../data/index.js';
import type { DataOptions } from './data-options.js';
import type { TrainResult } from './trainer.js';
import type { Progress } from './progress.js';
import type { TeacherFlags } from './teacher/index.js';
import { trainMethod, saveTrainedFiles, DECOMPOSITION_FILE, type KdMode, type Runtime } from './run-method.js';

export { DECOMPOSITION_FILE, type KdMode };

export interface DecomposeOptions extends DataOptions, Runtime {
  /** The teacher: a lorkd foundation file or an ONNX model; not needed with --kd none. */
  foundation?: string;
  /** An ONNX teacher's preprocessing and output names (teacher/teacher.ts). */
  teacher?: TeacherFlags;
  model: string;
  rank: number;
  loraAlpha?: number;
  /** Temperature alpha (paper 10) and KD weight beta (paper 1). */
  alpha: number;
  beta: number;
  kd: KdMode;
  strategy: StrategyOption;
  epochs: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  patience?: number;
  /** Also checkpoint every this many steps inside an epoch (default 0: at epochs' ends). */
  checkpointSteps?: number;
  out: string;
  resume?: boolean;
  progress: Progress;
}

export interface DecomposeRun {
  dm: DecompositionModel;
  file: string;
  result: TrainResult;
  suite: TaskSuite;
}

/** `lorkd decompose`: the LoRKD method trained on the one training path (run-method.ts), saved as a decomposition file. */
export async function trainDecomposition(o: DecomposeOptions): Promise<DecomposeRun> {
  const opts = { ...o, method: 'lorkd', resume: !!o.resume };
  const t = await trainMethod(opts, { name: 'decompose', label: 'decomposition', outputs: [DECOMPOSITION_FILE, 'teacher-cache-*'] });
  try {
    const file = saveTrainedFiles(t, opts).decomposition!;
    // The caller owns the decomposition model; the method's other parts (KD projection, teacher cache) end here.
    const dm = t.method.decomposition!;
    return { dm, file, result: t.result, suite: t.suite };
  } finally {
    t.dispose({ keep: t.method.decomposition });
  }
}
