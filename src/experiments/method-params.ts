// Parameter counts of a method the paper's way (Tables 1 and 4), from the method object itself:
// built for T tasks of `classes` classes, counted, disposed (or counted by its spec without
// building, where its networks are many). A KD method is built against a stand-in teacher (its
// projection is not counted: training counts the networks).
import { zeros } from '../tensor/index.js';
import { tensorRows } from './methods/kd.js';
import { methodSpec } from './methods/index.js';
import type { MethodContext, ParamCounts } from './methods/method.js';

export function methodParams(o: { method: string; tasks: number; classes: number; rank: number; model: string; foundationArch?: string }): ParamCounts & { method: string; tasks: number; rank: number } {
  const spec = methodSpec(o.method);
  const model = spec.arch === 'foundation' ? (o.foundationArch ?? 'resnet18') : o.model;
  const head = { method: spec.name, tasks: o.tasks, rank: o.rank };
  if (spec.countParams) {
    const c = spec.countParams({ tasks: o.tasks, model });
    return { ...head, params_training: c.params_training, params_deployment: c.params_deployment };
  }
  const tasks = Array.from({ length: o.tasks }, (_, t) => ({ name: `task${t}`, classNames: Array.from({ length: o.classes }, (_, c) => `c${c}`), classOffset: t * o.classes }));
  const kd = spec.teacherRequired ? { mode: 'logits' as const, alpha: 10, beta: 1, features: tensorRows(zeros([1, 512])), logits: tensorRows(zeros([1, o.tasks * o.classes])) } : null;
  const ctx: MethodContext = { tasks, model, inChannels: 3, channelsLast: false, kd, rank: o.rank, strategy: 'fused' };
  try {
    const m = spec.create(ctx);
    try {
      return { ...head, ...m.params() };
    } finally {
      m.dispose();
    }
  } finally {
    kd?.features.dispose();
    kd?.logits.dispose();
  }
}
