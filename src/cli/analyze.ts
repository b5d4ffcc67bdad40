// lorkd analyze gradcam|mig|cka: class activation maps, disentanglement and representation similarity.
import { checkDevice } from '../tensor/index.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { Command } from 'commander';
import { existsSync, mkdirSync } from 'node:fs';
import { readText } from '../io/read.js';
import path from 'node:path';
import { UserError } from '../tensor/errors.js';
import { loadTasks } from '../data/medmnist.js';
import type { TaskData } from '../data/dataset.js';
import { DEFAULT_TASKS } from '../experiments/data-options.js';
import { discoverGroups, groupCka, groupMig, probeSet, type NetworkGroup } from '../experiments/analysis.js';
import { gradcamFigure } from '../experiments/gradcam.js';
import { progressOf } from './common.js';
import { emit, intOption, run, table } from './output.js';

const list = (v: string): string[] => v.split(',').map((s) => s.trim()).filter(Boolean);

interface AnalyzeInput {
  compare?: string;
  models?: string;
  data?: string;
  perTask: number;
  out?: string;
}

/** The network groups and probe tasks of --compare DIR or --models a,b (one group). */
function inputsOf(o: AnalyzeInput): { groups: NetworkGroup[]; tasks: string[]; outDir: string } {
  if (!!o.compare === !!o.models) throw new UserError('pass either --compare DIR or --models FILE[,FILE...]');
  let tasks = o.data ? list(o.data) : null;
  if (o.compare) {
    const cj = path.join(o.compare, 'compare.json');
    if (!tasks && existsSync(cj)) {
      const t = (JSON.parse(readText(cj)) as { tasks?: unknown }).tasks;
      if (Array.isArray(t)) tasks = t.map((x) => (typeof x === 'string' ? x : (x as { name?: string; source?: string }).source ?? (x as { name: string }).name));
    }
    return { groups: discoverGroups(o.compare), tasks: tasks ?? DEFAULT_TASKS, outDir: o.out ?? o.compare };
  }
  const files = list(o.models!);
  for (const f of files) if (!existsSync(f)) throw new UserError(`${f}: model file not found`);
  return { groups: [{ label: 'models', files }], tasks: tasks ?? DEFAULT_TASKS, outDir: o.out ?? '.' };
}

function writeJson(dir: string, name: string, value: unknown): string {
  mkdirSync(dir, { recursive: true });
  const f = path.join(dir, name);
  writeFileAtomic(f, JSON.stringify(value, null, 2) + '\n');
  return f;
}

/** Runs one analysis over every group of the inputs (with progress) and writes `<analysis>.json`. */
function perGroup<R>(
  analysis: 'mig' | 'cka',
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  o: any,
  fn: (g: NetworkGroup, probe: TaskData[]) => R,
  extra: Record<string, unknown> = {},
): { results: R[]; value: Record<string, unknown>; file: string } {
  const { groups, tasks, outDir } = inputsOf(o);
  const probe = probeSet(loadTasks(tasks), o.perTask);
  const p = progressOf(o);
  p.start(`[${analysis}] groups`, groups.length);
  const results = groups.map((g, i) => {
    const r = fn(g, probe);
    p.update(i + 1, {});
    return r;
  });
  p.stop();
  const value = { analysis, tasks: probe.map((t) => t.name), per_task: o.perTask, ...extra, groups: results };
  return { results, value, file: writeJson(outDir, `${analysis}.json`, value) };
}

const groupOptions = (c: Command): Command =>
  c
    .option('--compare <dir>', 'a lorkd compare folder: its expert/foundation files, grouped by folder')
    .option('--models <files>', 'comma list of expert/foundation files (one group)')
    .option('--data <tasks>', 'comma list of tasks for the probe images (bundled names, .npz, image folders; default: compare.json tasks or the bundled three)')
    .option('--per-task <n>', 'test images per task', intOption('per-task', 2), 200)
    .option('--out <dir>', 'folder for the JSON (default: the --compare folder, or .)')
    .option('--device <d>', 'cpu | cuda | cuda:N (default: LORKD_DEVICE, else cpu)', process.env.LORKD_DEVICE ?? 'cpu')
    .option('--quiet', 'no progress output')
    .option('--json', 'print one JSON object');

const fmt = (v: number | null): string => (v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(3));

export function registerAnalyze(program: Command): void {
  const analyze = program.command('analyze').description('analyses of deployed networks: gradcam (Figure 3), mig (Figure 4), cka (supplement)');

  analyze
    .command('gradcam')
    .description('class activation maps (Grad-CAM, checked against CAM) of one or more networks over the same images, side by side as PNG')
    .requiredOption('--model <files>', 'comma list of expert/foundation files (e.g. foundation,expert)')
    .requiredOption('--input <paths>', 'comma list of PNG/JPEG files or folders')
    .requiredOption('--out <dir>', 'output folder (<image>.png per image, gradcam.json)')
    .option('--limit <n>', 'at most n images', intOption('limit'), 16)
    .option('--size <px>', 'panel side in pixels (default: max(128, input sizes))', intOption('size', 8))
    .option('--device <d>', 'cpu | cuda | cuda:N (default: LORKD_DEVICE, else cpu)', process.env.LORKD_DEVICE ?? 'cpu')
    .option('--quiet', 'no progress output')
    .option('--json', 'print one JSON object')
    .action((o) =>
      run(() => {
        const r = gradcamFigure({ models: list(o.model), inputs: list(o.input), out: o.out, limit: o.limit, size: o.size, device: checkDevice(o.device), progress: progressOf(o) });
        emit(!!o.json, r, () =>
          table(['image', ...r.models.map((m) => path.basename(m))], r.images.map((im) => [path.basename(im.png), ...im.panels.map((p) => `${p.class} ${(100 * p.probability).toFixed(0)}%`)])),
        );
      }),
    );

  groupOptions(analyze.command('mig'))
    .description("mutual information gap of each group's pooled features w.r.t. the task and class factors (20 bins); writes mig.json")
    .option('--bins <n>', 'histogram bins per latent', intOption('bins', 2), 20)
    .action((o) =>
      run(() => {
        const { results, value, file } = perGroup('mig', o, (g, probe) => groupMig(g, probe, o.bins, checkDevice(o.device)), { bins: o.bins });
        emit(!!o.json, { ...value, file }, () =>
          table(['group', 'MIG', 'task gap', 'class gap', 'skipped'], results.map((r) => [r.label, fmt(r.mig), fmt(r.factors[0]!.gap), fmt(r.factors[1]!.gap), r.skipped.join(' ') || '-'])) + `\n${file}`,
        );
      }),
    );

  groupOptions(analyze.command('cka'))
    .description("linear CKA between each group's per-task networks on the same probe images; writes cka.json")
    .action((o) =>
      run(() => {
        const { results, value, file } = perGroup('cka', o, (g, probe) => groupCka(g, probe, checkDevice(o.device)));
        emit(!!o.json, { ...value, file }, () =>
          results.map((r) => `${r.label} (${r.n} images)\n` + table(['', ...r.networks.map((n) => n.name)], r.matrix.map((row, i) => [r.networks[i]!.name, ...row.map(fmt)]))).join('\n\n') + `\n${file}`,
        );
      }),
    );
}
