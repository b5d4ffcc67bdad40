// FLOPs per image (multiply-accumulates, ptflops' way; see eval/complexity.ts) of the networks of a
// single run, counted by tracing them once: the report's Table 4 when the results carry none.
import { complexity, traceLayers } from '../eval/complexity.js';
import { createModel } from '../models/registry.js';

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
