// Analyses of deployed networks (paper Figures 3-4, supplement): MIG of each method's pooled
// features w.r.t. the task and class factors, linear CKA between a method's per-task networks,
// and class activation maps. Networks come in groups (one group per method / run folder).
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { type Tensor, cat, noGrad, tidy } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { imagesToTensor, type TaskData } from '../data/index.js';
import { splitRows } from '../data/suite.js';
import { mig, type MigResult } from '../eval/mig.js';
import { ckaMatrix } from '../eval/cka.js';
import { fileFormat, readNetworkFile, type NetworkFile } from './network-file.js';

/** The deployed networks of one method (or one run folder): expert files and/or a foundation file. */
export interface NetworkGroup {
  label: string;
  files: string[];
}

const NETWORK_FORMATS = new Set(['expert', 'kf-expert', 'foundation']);

/** A file's lorkd_format, or null when it is not a readable safetensors file (skipped by discovery). */
function formatOrNull(f: string): string | null {
  try {
    return fileFormat(f).format ?? null;
  } catch (e) {
    if (e instanceof UserError) return null;
    throw e;
  }
}

/**
 * The network groups of a comparison folder: every expert, KF pair or foundation safetensors file under
 * `dir` (up to 4 levels deep), grouped by the folder that holds it (label = that folder relative
 * to dir, '.' for dir itself), groups and files sorted by name. Training checkpoints and files
 * that are not lorkd networks are skipped.
 */
export function discoverGroups(dir: string): NetworkGroup[] {
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new UserError(`${dir}: comparison folder not found`);
  }
  if (!st.isDirectory()) throw new UserError(`${dir}: --compare needs a folder (written by lorkd compare)`);
  const groups = new Map<string, string[]>();
  const walk = (d: string, depth: number): void => {
    for (const name of readdirSync(d).sort()) {
      if (name.startsWith('.')) continue;
      const f = path.join(d, name);
      const s = statSync(f);
      if (s.isDirectory()) {
        if (depth < 4) walk(f, depth + 1);
      } else if (name.endsWith('.safetensors') && !name.endsWith('.ckpt.safetensors') && !name.endsWith('.best.safetensors')) {
        if (!NETWORK_FORMATS.has(formatOrNull(f) ?? '')) continue;
        const label = path.relative(dir, d) || '.';
        groups.set(label, [...(groups.get(label) ?? []), f]);
      }
    }
  };
  walk(dir, 0);
  if (groups.size === 0) throw new UserError(`${dir}: no expert or foundation networks found (lorkd compare writes them per method and seed)`);
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([label, files]) => ({ label, files }));
}

/** The first `perTask` test images of each task (the probe set of the analyses). */
export function probeSet(tasks: readonly TaskData[], perTask: number): TaskData[] {
  if (!(Number.isInteger(perTask) && perTask >= 1)) throw new UserError(`--per-task must be a positive integer, got ${perTask}`);
  return tasks.map((t) => {
    const n = Math.min(perTask, t.splits.test.n);
    if (n < 2) throw new UserError(`task '${t.name}' has ${t.splits.test.n} test images; the analyses need at least 2`);
    return { ...t, splits: { ...t.splits, test: splitRows(t, 'test', Array.from({ length: n }, (_, i) => i)) } };
  });
}

/** Pooled features (n x F, float32 tensor) of a task's probe images through a network, with its own preprocessing. */
export function featuresOf(net: NetworkFile, task: TaskData, batch = 128): Tensor {
  const s = task.splits.test;
  const per = 3 * s.height * s.width;
  net.model.eval();
  return noGrad(() =>
    tidy(() => {
      const parts: Tensor[] = [];
      for (let b = 0; b < s.n; b += batch) {
        const m = Math.min(batch, s.n - b);
        const x = imagesToTensor(s.images.subarray(b * per, (b + m) * per), m, s.height, s.width, { size: net.inputSize, mean: net.mean, std: net.std, device: net.model.device });
        parts.push(net.features(x));
      }
      return cat(parts, 0);
    }),
  );
}

/** The network of a group that handles task `name`: its expert, else the group's only network (e.g. the foundation). */
function networkFor(nets: readonly NetworkFile[], name: string): NetworkFile | null {
  return nets.find((n) => n.task === name) ?? (nets.length === 1 ? nets[0]! : (nets.find((n) => n.task === null) ?? null));
}

function withNetworks<R>(group: NetworkGroup, device: string, fn: (nets: NetworkFile[]) => R): R {
  const nets: NetworkFile[] = [];
  try {
    for (const f of group.files) nets.push(readNetworkFile(f));
    for (const n of nets) n.model.to(device);
    return fn(nets);
  } finally {
    for (const n of nets) n.model.dispose();
  }
}

export interface GroupMig extends MigResult {
  label: string;
  /** Which network produced each task's features. */
  networks: { task: string; file: string }[];
  /** Tasks without a network in the group (their images are left out). */
  skipped: string[];
}

/**
 * MIG of a group's pooled features: each probe image goes through its own task's network (the
 * oracle task id, as deployed), the features of all tasks are stacked, and the factors are the
 * task id and the global class (task's class offset + local label).
 */
export function groupMig(group: NetworkGroup, probe: readonly TaskData[], bins = 20, device = 'cpu'): GroupMig {
  return withNetworks(group, device, (nets) => {
    const rows: Float32Array[] = [];
    const task: number[] = [];
    const cls: number[] = [];
    const networks: GroupMig['networks'] = [];
    const skipped: string[] = [];
    let width = -1;
    let offset = 0;
    probe.forEach((t, ti) => {
      const net = networkFor(nets, t.name);
      if (!net) {
        skipped.push(t.name);
      } else {
        const f = tidy(() => featuresOf(net, t).toArray() as Float32Array);
        const d = f.length / t.splits.test.n;
        if (width >= 0 && d !== width) throw new UserError(`${group.label}: networks give features of different widths (${width} and ${d}); MIG needs one latent space`);
        width = d;
        rows.push(f);
        for (let i = 0; i < t.splits.test.n; i++) {
          task.push(ti);
          cls.push(offset + t.splits.test.labels[i]!);
        }
        networks.push({ task: t.name, file: net.file });
      }
      offset += t.classNames.length;
    });
    if (rows.length === 0) throw new UserError(`${group.label}: no network matches any task (${probe.map((t) => t.name).join(', ')})`);
    const z = new Float32Array(task.length * width);
    let at = 0;
    for (const r of rows) z.set(r, at), (at += r.length);
    // Renumber the classes present as 0..K-1 (tasks left out leave gaps).
    const ids = [...new Set(cls)].sort((a, b) => a - b);
    const classIds = Int32Array.from(cls, (c) => ids.indexOf(c));
    return { label: group.label, networks, skipped, ...mig(z, task.length, width, { task: Int32Array.from(task), class: classIds }, bins) };
  });
}

export interface GroupCka {
  label: string;
  /** The networks compared, in matrix order: their task (or 'foundation') and file. */
  networks: { name: string; file: string }[];
  /** Linear CKA between the networks' pooled features of the same probe images (all tasks' probes). */
  matrix: number[][];
  n: number;
}

/** Linear CKA between a group's networks, each run on every task's probe images (the same samples for all). */
export function groupCka(group: NetworkGroup, probe: readonly TaskData[], device = 'cpu'): GroupCka {
  return withNetworks(group, device, (nets) =>
    tidy(() => {
      const feats = nets.map((net) => cat(probe.map((t) => featuresOf(net, t)), 0));
      return {
        label: group.label,
        networks: nets.map((n) => ({ name: n.task ?? 'foundation', file: n.file })),
        matrix: ckaMatrix(feats),
        n: feats[0]!.shape[0]!,
      };
    }),
  );
}
