// Results of a run: foundation (unified head and restricted to the task's classes) against the
// LoRKD experts, per task and mean, with parameter counts. Written as results.json.
import type { TaskSuite } from '../data/index.js';
import type { ImageClassifier } from '../models/classifier.js';
import type { DecompositionModel } from '../lorkd/decomposition.js';
import { expertModel } from '../lorkd/deploy.js';
import { evalFoundation, evalDecomposition, evalExpert, meanOf, type TaskResult } from './evaluate.js';
import { evalLoader, type DataOptions } from './data-options.js';

export interface RunResults {
  split: string;
  tasks: string[];
  foundation: { model: string; input: number; params: number; unified: TaskResult[]; restricted: TaskResult[]; mean_accuracy: number; mean_accuracy_restricted: number };
  lorkd: {
    input: number;
    params_training: number;
    params_expert: number;
    per_task: TaskResult[];
    /** The exported (fused) experts evaluated as plain models: must equal per_task. */
    fused_experts: TaskResult[];
    mean_accuracy: number;
  };
}

/** `foundationInput`: the foundation's own input size (its metadata), when it differs from the experts'. */
export function evaluateRun(suite: TaskSuite, data: DataOptions, foundation: ImageClassifier, foundationName: string, dm: DecompositionModel, split: 'test' | 'val' = 'test', foundationInput = data.input): RunResults {
  const cl = data.channelsLast ?? true;
  const loader = evalLoader(suite, data, split);
  const f = evalFoundation(foundation, suite, foundationInput === data.input ? loader : evalLoader(suite, { ...data, input: foundationInput }, split), cl);
  const per = evalDecomposition(dm, suite, loader, cl);
  const fused = suite.tasks.map((t) => {
    const m = expertModel(dm, t.id);
    try {
      if (cl) m.toChannelsLast();
      return evalExpert(m, t.id, suite, loader, cl);
    } finally {
      m.dispose();
    }
  });
  const heads = dm.namedParameters().filter(([n]) => n.startsWith('heads.')).reduce((a, [, p]) => a + p.numel, 0);
  const expertParams = (() => {
    const m = expertModel(dm, 0);
    const n = m.numParameters();
    m.dispose();
    return n;
  })();
  return {
    split,
    tasks: suite.tasks.map((t) => t.name),
    foundation: {
      model: foundationName, input: foundationInput, params: foundation.numParameters(), unified: f.unified, restricted: f.restricted,
      mean_accuracy: meanOf(f.unified, 'accuracy'), mean_accuracy_restricted: meanOf(f.restricted, 'accuracy'),
    },
    lorkd: { input: data.input, params_training: dm.numParameters() - heads, params_expert: expertParams, per_task: per, fused_experts: fused, mean_accuracy: meanOf(per, 'accuracy') },
  };
}

const pct = (x: number) => (x * 100).toFixed(1);

/** The human table: one row per task, then the mean and the parameter counts. */
export function resultsTable(r: RunResults): string[][] {
  const rows = r.tasks.map((t, i) => [
    t,
    `${pct(r.foundation.unified[i]!.accuracy)} / ${r.foundation.unified[i]!.auc.toFixed(3)}`,
    `${pct(r.foundation.restricted[i]!.accuracy)} / ${r.foundation.restricted[i]!.auc.toFixed(3)}`,
    `${pct(r.lorkd.per_task[i]!.accuracy)} / ${r.lorkd.per_task[i]!.auc.toFixed(3)}`,
  ]);
  rows.push(['mean accuracy', pct(r.foundation.mean_accuracy), pct(r.foundation.mean_accuracy_restricted), pct(r.lorkd.mean_accuracy)]);
  rows.push(['params', `${(r.foundation.params / 1e6).toFixed(2)} M`, `${(r.foundation.params / 1e6).toFixed(2)} M`, `${(r.lorkd.params_expert / 1e6).toFixed(2)} M / expert`]);
  return rows;
}
export const RESULTS_HEADER = ['task (acc % / AUC)', 'foundation (unified)', 'foundation (restricted)', 'LoRKD expert'];
