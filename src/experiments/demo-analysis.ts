// The demo's analyses, each seconds long, written where `lorkd report --run` looks for them:
// Grad-CAM of a few test images per task, the foundation against the task's expert (Figure 3);
// MIG (Figure 4) and CKA of the run's networks on the test images; and a small MedNIST transfer
// (Table 2: the expert against the same network from scratch, k shots per class). The files are
// those `lorkd analyze` and `lorkd transfer` write; a re-run keeps what exists.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeFileAtomic } from '../io/atomic.js';
import { packageRoot, type TaskData } from '../data/index.js';
import { overlay, panelsPng } from '../eval/cam.js';
import { groupCka, groupMig, probeSet, type NetworkGroup } from './analysis.js';
import { gradcamFigure, type GradcamReport } from './gradcam.js';
import { parseTransferSpec, transferStudy } from './transfer.js';
import type { Progress } from './progress.js';

export interface DemoAnalysisOptions {
  runDir: string;
  tasks: readonly TaskData[];
  foundation: string;
  /** One expert file per task, in task order. */
  experts: readonly string[];
  /** The experts' input side (the Baseline from scratch gets the same). */
  input: number;
  /** Test images per task in the Grad-CAM grid (default 2). */
  gradcamPerTask?: number;
  /** Test images per task for MIG and CKA (default 100). */
  probePerTask?: number;
  /** The task whose expert is fine-tuned on MedNIST (default: pneumoniamnist when present, else the first). */
  transferTask?: string;
  /** Shots per class, epochs and seeds of the transfer (default k = 5, 10 epochs, seeds 0,1,2). */
  shots?: number;
  transferEpochs?: number;
  transferSeeds?: number[];
  progress: Progress;
}

/** What each analysis wrote and how long it took (s). */
export interface DemoAnalysisResult {
  gradcam: string;
  mig: string;
  cka: string;
  transfer: string;
  seconds: Record<'gradcam' | 'mig' | 'cka' | 'transfer', number>;
}

const timed = async (fn: () => unknown): Promise<number> => {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
};

/** The first `k` test images of each task as PNG files (inputs of `lorkd analyze gradcam`). */
function writeProbeImages(tasks: readonly TaskData[], k: number, dir: string): Map<string, string[]> {
  mkdirSync(dir, { recursive: true });
  const out = new Map<string, string[]>();
  for (const t of tasks) {
    const s = t.splits.test;
    const per = 3 * s.height * s.width;
    const files = Array.from({ length: Math.min(k, s.n) }, (_, i) => {
      const file = path.join(dir, `${t.name}-${i}-${t.classNames[s.labels[i]!]!.replace(/[^A-Za-z0-9]+/g, '_')}.png`);
      writeFileAtomic(file, panelsPng([overlay(s.images.subarray(i * per, (i + 1) * per), null, s.height, s.width)], s.height, s.width));
      return file;
    });
    out.set(t.name, files);
  }
  return out;
}

/** Grad-CAM strips of every task's images: input, foundation, the task's expert; one gradcam.json. */
function gradcam(o: DemoAnalysisOptions, dir: string): void {
  const inputs = writeProbeImages(o.tasks, o.gradcamPerTask ?? 2, path.join(dir, 'inputs'));
  const merged: GradcamReport = { models: [o.foundation, "expert of the image's task"], size: 128, images: [] };
  o.tasks.forEach((t, i) => {
    const r = gradcamFigure({ models: [o.foundation, o.experts[i]!], inputs: inputs.get(t.name)!, out: dir, size: 128, progress: o.progress });
    merged.images.push(...r.images);
  });
  writeFileAtomic(path.join(dir, 'gradcam.json'), JSON.stringify(merged, null, 2) + '\n');
}

/** mig.json and cka.json as `lorkd analyze mig|cka --compare RUN` writes them (groups: the foundation, the experts). */
function migCka(o: DemoAnalysisOptions, which: 'mig' | 'cka', file: string): void {
  const perTask = o.probePerTask ?? 100;
  const probe = probeSet(o.tasks, perTask);
  const base = { analysis: which, tasks: probe.map((t) => t.name), per_task: perTask };
  const foundation: NetworkGroup = { label: '.', files: [o.foundation] };
  const experts: NetworkGroup = { label: 'experts', files: [...o.experts] };
  const value =
    which === 'mig'
      ? { ...base, bins: 20, groups: [foundation, experts].map((g) => groupMig(g, probe, 20)) }
      : { ...base, groups: [groupCka({ label: 'foundation + lorkd experts', files: [o.foundation, ...o.experts] }, probe)] };
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

/** Runs the analyses that are not in the run directory yet. */
export async function demoAnalyses(o: DemoAnalysisOptions): Promise<DemoAnalysisResult> {
  const r: DemoAnalysisResult = {
    gradcam: path.join(o.runDir, 'gradcam'),
    mig: path.join(o.runDir, 'mig.json'),
    cka: path.join(o.runDir, 'cka.json'),
    transfer: path.join(o.runDir, 'transfer'),
    seconds: { gradcam: 0, mig: 0, cka: 0, transfer: 0 },
  };
  const log = (what: string, s: number) => o.progress.log(`[demo] ${what} (${s.toFixed(1)} s)`);
  if (!existsSync(path.join(r.gradcam, 'gradcam.json'))) {
    log(`Grad-CAM of ${o.gradcamPerTask ?? 2} test images per task, foundation against expert -> ${r.gradcam}`, (r.seconds.gradcam = await timed(() => gradcam(o, r.gradcam))));
  }
  for (const which of ['mig', 'cka'] as const) {
    if (existsSync(r[which])) continue;
    log(`${which.toUpperCase()} of the foundation and the experts on ${o.probePerTask ?? 100} test images per task -> ${r[which]}`, (r.seconds[which] = await timed(() => migCka(o, which, r[which]))));
  }
  const names = o.tasks.map((t) => t.name);
  const task = o.transferTask ?? (names.includes('pneumoniamnist') ? 'pneumoniamnist' : names[0]!);
  const shots = o.shots ?? 5;
  const epochs = o.transferEpochs ?? 10;
  const spec = parseTransferSpec(`${path.join(packageRoot(), 'data', 'mednist')}:shots=${shots}:epochs=${epochs}`, o.transferSeeds ?? [0, 1, 2]);
  o.progress.log(`[demo] transfer to MedNIST, k = ${shots}, ${epochs} epochs, seeds ${spec.seeds.join(',')}: the ${task} expert against shufflenet_v2_x1_0 from scratch -> ${r.transfer}`);
  r.seconds.transfer = await timed(() =>
    transferStudy(spec, [
      { label: 'lorkd', from: o.experts[names.indexOf(task)]! },
      { label: 'baseline', from: 'scratch', model: 'shufflenet_v2_x1_0', input: o.input },
    ], { out: r.transfer, progress: o.progress, resume: true }),
  );
  log('transfer done', r.seconds.transfer);
  return r;
}
