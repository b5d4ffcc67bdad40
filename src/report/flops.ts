// FLOPs per image (multiply-accumulates, ptflops' way; see eval/complexity.ts) of the networks of a
// single run, counted by tracing them once: the report's Table 4 when the results carry none.
import { complexity, traceLayers } from '../eval/complexity.js';
import { createModel } from '../models/registry.js';
import { findMethodSpec } from '../experiments/methods/index.js';
import { maxRank } from '../lorkd/ranks.js';
import type { RankSpec } from '../lorkd/decomposition.js';

export interface RunFlops {
  foundation: number;
  lorkd_training: number;
  lorkd_deployment: number;
}

export function countRunFlops(o: { foundationModel: string; foundationInput: number; foundationClasses: number; model: string; tasks: number; rank: number; input: number }): RunFlops {
  const c = complexity({ model: o.model, tasks: o.tasks, rank: o.rank, input: o.input });
  const f = createModel(o.foundationModel, { numClasses: o.foundationClasses });
  try {
    const macs = traceLayers(f, [3, o.foundationInput, o.foundationInput]).reduce((s, l) => s + l.macs, 0);
    return { foundation: macs, lorkd_training: c.flops_training, lorkd_deployment: c.flops_deployment };
  } finally {
    f.dispose();
  }
}

/**
 * FLOPs of a comparison's methods at its input: LoRKD at each rank (the experts' low-rank paths in
 * training, the fused backbone deployed) and the plain-backbone baselines. The foundation and KF
 * are left out (null): their networks are not the backbone.
 */
export function countMethodFlops(methods: { key: string; method: string; rank: RankSpec | null }[], o: { model: string; tasks: number; input: number }): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  const byRank = new Map<number, [number, number]>();
  // A rank per task: training counts the largest (as `lorkd params`); the per-task rows are Table 4's.
  const at = (spec: RankSpec) => {
    const rank = maxRank(spec);
    if (!byRank.has(rank)) {
      const c = complexity({ model: o.model, tasks: o.tasks, rank, input: o.input });
      byRank.set(rank, [c.flops_training, c.flops_deployment]);
    }
    return byRank.get(rank)!;
  };
  for (const m of methods) {
    // The spec says how: LoRKD's low-rank paths in training and the fused backbone deployed; a plain
    // backbone (one per task or shared) costs the same in training and deployment.
    const kind = findMethodSpec(m.method)?.flops;
    if (kind === 'lorkd') out.set(m.key, at(m.rank ?? 8));
    else if (kind === 'backbone') out.set(m.key, [at(1)[1], at(1)[1]]);
  }
  return out;
}
