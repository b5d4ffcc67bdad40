// A hot add that joins the running EKS pass: a department from a grown decomposition (`lorkd
// grow`) whose shared part (W0 of every expert conv, BatchNorm parameters and statistics, the stem
// and the rest of the backbone) is bit-identical to a decomposition the service already runs
// becomes one more task of that running model: its expert factors and head are copied in, and
// mixed batches of old and new departments go through one forward. Appending a task leaves the
// other tasks' indices, and so the requests in flight, as they were.
import { readDecomposition } from '../lorkd/checkpoint.js';
import { expertModel } from '../lorkd/deploy.js';
import type { DecompositionModel } from '../lorkd/decomposition.js';
import { type Tensor, noGrad, tidy } from '../tensor/index.js';
import type { SharedDecomposition, DepartmentSpec, Preprocessing } from './departments.js';
import type { ServeMode } from './load.js';
import { forgetPlan } from './forward.js';

/** Keys of the shared part: everything but the heads and the tasks' own factors. */
const isShared = (key: string): boolean => !key.startsWith('heads.') && !/\.expert[AB]\.[^.]+$/.test(key);

function sameBits(a: Tensor, b: Tensor): boolean {
  if (a.dtype !== b.dtype || a.shape.join() !== b.shape.join()) return false;
  return tidy(() => {
    const x = Buffer.from((a.to('cpu').contiguous().toArray() as Float32Array).buffer);
    const y = Buffer.from((b.to('cpu').contiguous().toArray() as Float32Array).buffer);
    return x.equals(y);
  });
}

/** Whether `file`'s model has the running model's shared part, bit for bit. */
function sharesBackbone(running: DecompositionModel, file: DecompositionModel): boolean {
  if (running.config.model !== file.config.model || running.config.inChannels !== file.config.inChannels) return false;
  return tidy(() => {
    const theirs = file.stateDict();
    for (const [k, t] of running.stateDict()) {
      if (!isShared(k)) continue;
      const u = theirs.get(k);
      if (!u || !sameBits(t, u)) return false;
    }
    return true;
  });
}

/**
 * The department `name` (task `task` of decomposition `file`) as a new task of one of the running
 * shared models, or null when none shares its backbone bit for bit or already has a task of that
 * name (then the caller loads the file as a model of its own, as before).
 */
export function joinRunning(file: string, name: string, task: string, running: SharedDecomposition[], mode: ServeMode, preprocessing: (md: Record<string, string>) => Preprocessing): DepartmentSpec | null {
  if (mode === 'fused' || running.length === 0) return null;
  const { model, metadata } = readDecomposition(file, { strategy: 'fused' });
  try {
    const t = model.taskIndex(task);
    const spec = model.config.tasks[t]!;
    const shared = running.find((s) => !s.model.config.tasks.some((x) => x.name === task) && sharesBackbone(s.model, model));
    if (!shared) return null;
    const dm = shared.model;
    const pre = preprocessing(metadata);
    const index = dm.addTask({ name: spec.name, classNames: spec.classNames, rank: spec.rank, loraAlpha: spec.loraAlpha });
    // The running model's inference plan folded the tasks it had: the next batch makes a new one.
    forgetPlan(dm);
    noGrad(() => {
      const from = new Map(model.expertConvs());
      for (const [p, c] of dm.expertConvs()) {
        const src = from.get(p)!.factors(t);
        const dst = c.factors(index);
        dst.a.copy_(src.a);
        dst.b.copy_(src.b);
      }
      dm.head(index).weight.copy_(model.head(t).weight);
      dm.head(index).bias?.copy_(model.head(t).bias!);
    });
    const plain = mode !== 'eks' ? expertModel(dm, index).eval() : undefined;
    shared.acquire();
    return {
      task: name, classNames: spec.classNames, preprocessing: pre, source: `${file}#${task}`, arch: `${dm.config.model}@${pre.inputSize}`,
      eks: { shared, index }, ...(plain ? { plain } : {}),
    };
  } finally {
    model.dispose();
  }
}
