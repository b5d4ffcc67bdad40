// What a report shows, independent of where it came from (a single run or a comparison of
// methods over seeds): every section reads this, every loader fills the parts it has.
import type { Stat } from './input.js';

export interface TaskScore {
  task: string;
  accuracy: Stat;
  auc: Stat | null;
  /** Test images of the task (a single run), for a binomial interval when there are no seeds. */
  n: number | null;
}

export interface MethodRow {
  /** Key (e.g. "lorkd", "stl", "foundation (restricted)"). */
  name: string;
  params_training: number | null;
  params_deployment: number | null;
  flops_training: number | null;
  flops_deployment: number | null;
  per_task: TaskScore[];
  mean_accuracy: Stat;
  mean_auc: Stat | null;
}

/** Table 2: a network fine-tuned on a downstream set. */
export interface TransferRow {
  method: string;
  downstream: string;
  shots: number | null;
  accuracy: Stat;
  auc: Stat | null;
  params_deployment: number | null;
  compression: number | null;
}

/** Table 3: LoRKD at one rank. */
export interface RankRow {
  rank: number;
  params_training: number | null;
  per_task: TaskScore[];
  mean_accuracy: Stat;
}

/** One task's experts of a decomposition whose ranks are given per task (issue 20: counted per task). */
export interface TaskExpertRow {
  /** Table 1's row key of the decomposition (e.g. "lorkd", "lorkd-rbreastmnist4-retinamnist16"). */
  method: string;
  task: string;
  rank: number;
  /** A and B of this task in every expert convolution. */
  params_experts: number;
  /** Multiply-accumulates per image of this task's rows in training (W0 and its experts); null without an input size. */
  flops_training: number | null;
}

/** One epoch of one training run (trainer's EpochRecord). */
export interface CurvePoint {
  series: string;
  epoch: number;
  loss: number;
  val: number | null;
}

/** A method's paired difference of mean accuracy against LoRKD, per seed. */
export interface PairedRow {
  method: string;
  diff: Stat;
  /** Per task of the study (in its order): the task's accuracy minus LoRKD's, paired per seed; null where not given. */
  per_task: (Stat | null)[];
}

/** The Grad-CAM figure: one strip per input image (the image, then each network's map). */
export interface GradcamGrid {
  /** Panel labels of every strip, left to right (e.g. input, foundation, expert). */
  columns: string[];
  rows: { label: string; dataUri: string; captions: string[] }[];
}

export interface MigRow {
  method: string;
  mig: Stat;
  /** Optional per-factor values (e.g. task, class). */
  factors: Record<string, number>;
}

export interface CkaMatrix {
  method: string;
  tasks: string[];
  values: number[][];
}

export interface Study {
  title: string;
  kind: 'run' | 'compare';
  source: string;
  tasks: string[];
  seeds: number[];
  /** Where the intervals come from: seeds (t interval) or the test images (Wilson, one run). */
  interval: 'seeds' | 'binomial' | 'none';
  methods: MethodRow[];
  transfer: TransferRow[];
  ranks: RankRow[];
  /** Per task, for each decomposition with a rank per task (empty where every task has one rank). */
  taskExperts: TaskExpertRow[];
  curves: CurvePoint[];
  paired: PairedRow[];
  gradcam: GradcamGrid | null;
  mig: MigRow[];
  cka: CkaMatrix[];
  /** Free-form key facts (budget, wall time, files) shown under the title. */
  facts: [string, string][];
  /** How Table 4's FLOPs were obtained (shown under it), or null when the source gave them. */
  flopsNote: string | null;
  /** Inputs that were looked for and not found, or skipped, with the reason (shown in the report). */
  notes: string[];
}

export function emptyStudy(kind: Study['kind'], source: string, title: string): Study {
  return { title, kind, source, tasks: [], seeds: [], interval: 'none', methods: [], transfer: [], ranks: [], taskExperts: [], curves: [], paired: [], gradcam: null, mig: [], cka: [], facts: [], flopsNote: null, notes: [] };
}
