// Training checkpoints of earlier versions held each expert conv's factors stacked, one (T, ...)
// `expertA` / `expertB` parameter per conv (and its optimizer state at that parameter's index).
// Now each task's factors are parameters of their own (`expertA.<task>`, lorkd/task-factors.ts).
// `upgradeStackedTrainState` rewrites such a checkpoint's tensors and optimizer groups for the
// current model, so that a run started before the change resumes: each stacked tensor (the
// parameter and its momentum) is split by task, and the optimizer's parameter indices follow.
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/index.js';
import { ExpertConv2d } from '../lorkd/expert-conv.js';

const STACKED = /^model\.(.+)\.expert([AB])$/;
const STATE = /^optim\.state\.(\d+)\.(.+)$/;

/** The stacked key of a per-task factor name (`<conv>.expertA.<task>` -> `<conv>.expertA`), else the name. */
const stackedName = (name: string): string => name.replace(/\.expert([AB])\.[^.]+$/, '.expert$1');

/**
 * The checkpoint's tensors and optimizer groups in the current layout (new maps; views of the given
 * tensors), or null when it has no stacked factors. Assumes what the trainer does: the optimizer
 * holds the model's parameters in `model.parameters()` order.
 */
export function upgradeStackedTrainState(model: Module, tensors: Map<string, Tensor>, groupsJson: string): { tensors: Map<string, Tensor>; groups: string } | null {
  const convOf = (path: string): ExpertConv2d | null => {
    try {
      const m = model.getSubmodule(path);
      return m instanceof ExpertConv2d ? m : null;
    } catch {
      return null;
    }
  };
  const stacked = [...tensors.keys()].filter((k) => STACKED.test(k) && convOf(STACKED.exec(k)![1]!) && tensors.get(k)!.ndim === 3);
  if (!stacked.length) return null;
  // Parameter order now, and then: the per-task factors of a conv collapse into one stacked parameter.
  const names = model.namedParameters().map(([n]) => n);
  const oldNames: string[] = [];
  const oldIndex = names.map((n) => {
    const s = stackedName(n);
    if (oldNames[oldNames.length - 1] !== s) oldNames.push(s);
    return oldNames.length - 1;
  });
  const taskOf = names.map((n) => {
    if (stackedName(n) === n) return null;
    const path = n.replace(/\.expert[AB]\.[^.]+$/, '');
    return convOf(path)!.tasks.findIndex((t) => n.endsWith(`.${t.name}`));
  });
  const out = new Map<string, Tensor>();
  for (const [k, v] of tensors) {
    const m = STACKED.exec(k);
    const conv = m && v.ndim === 3 ? convOf(m[1]!) : null;
    if (conv) conv.tasks.forEach((t, i) => out.set(`${k}.${t.name}`, v.select(0, i)));
    else if (!STATE.test(k)) out.set(k, v);
  }
  names.forEach((_, i) => {
    for (const [k, v] of tensors) {
      const m = STATE.exec(k);
      if (!m || Number(m[1]) !== oldIndex[i]) continue;
      const t = taskOf[i];
      out.set(`optim.state.${i}.${m[2]}`, t === null || v.ndim === 0 || v.numel === 1 ? v : v.select(0, t!));
    }
  });
  const groups = (JSON.parse(groupsJson) as { params: number[] }[]).map((g) => ({ ...g, params: names.flatMap((_, i) => (g.params.includes(oldIndex[i]!) ? [i] : [])) }));
  return { tensors: out, groups: JSON.stringify(groups) };
}
