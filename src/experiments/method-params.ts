// Parameter counts of a method the paper's way (Tables 1 and 4), from the method object itself:
// built for T tasks of `classes` classes, counted, disposed. A KD method is built against a
// stand-in teacher (its projection is not counted: training counts the networks).
import { zeros } from '../tensor/index.js';
import { createMethod, KD_METHODS, methodName } from './methods/index.js';
import { kfParams } from './methods/kf.js';
import type { MethodContext, ParamCounts } from './methods/method.js';

export function methodParams(o: { method: string; tasks: number; classes: number; rank: number; model: string; foundationArch?: string }): ParamCounts & { method: string; tasks: number; rank: number } {
  const name = methodName(o.method);
  if (name === 'kf') {
    const c = kfParams(o.tasks, undefined, { model: o.model });
    return { method: name, tasks: o.tasks, rank: o.rank, params_training: c.params_training, params_deployment: c.params_deployment };
  }
  const tasks = Array.from({ length: o.tasks }, (_, t) => ({ name: `task${t}`, classNames: Array.from({ length: o.classes }, (_, c) => `c${c}`), classOffset: t * o.classes }));
  const kd = KD_METHODS.includes(name) ? { mode: 'logits' as const, alpha: 10, beta: 1, features: zeros([1, 512]), logits: zeros([1, o.tasks * o.classes]) } : null;
  const ctx: MethodContext = { tasks, model: name === 'foundation' ? (o.foundationArch ?? 'resnet18') : o.model, inChannels: 3, channelsLast: false, kd, rank: o.rank, strategy: 'fused' };
  try {
    const m = createMethod(name, ctx);
    try {
      return { method: name, tasks: o.tasks, rank: o.rank, ...m.params() };
    } finally {
      m.dispose();
    }
  } finally {
    kd?.features.dispose();
    kd?.logits.dispose();
  }
}
