// lorkd compare: every method of Table 1 on the same suite and budget over seeds (see
// src/experiments/compare.ts); resumable, finished runs are read back. With the transfer module
// present, --transfer SPEC fine-tunes each method's deployed network on a downstream set too.
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { runCompare, compareTable, parseMethods, type CompareResult } from '../experiments/compare.js';
import { UserError } from '../tensor/errors.js';
import { parseRankList } from '../lorkd/ranks.js';
import { DECOMPOSITION_FILE } from '../experiments/run-method.js';
import type { CliRuntime } from './distributed.js';
import type { StudySource, TransferRunOptions } from '../experiments/transfer.js';
import { loadTasks } from '../data/medmnist.js';
import { teacherOptions, teacherFlagsOf } from './teacher-options.js';
import { dataOptions, trainOptions, toData, progressOf, deviceOptions, runtimeOf, methodOptions } from './common.js';
import { run, table } from './output.js';
import { kdOf, strategyOf } from './pipeline.js';

function intList(name: string, v: string): number[] {
  const out = v.split(',').map((s) => s.trim());
  if (!out.length || out.some((s) => !/^[0-9]+$/.test(s))) throw new UserError(`--${name} must be a comma list of non-negative integers, got "${v}"`);
  return out.map(Number);
}


const TRANSFER_MODULE = path.join(path.dirname(fileURLToPath(import.meta.url)), '../experiments/transfer.js');

export function registerCompare(program: Command, rt: CliRuntime): void {
  const c = teacherOptions(deviceOptions(trainOptions(dataOptions(program.command('compare'), { input: 64, batch: 128 }), { epochs: 12, lr: 0.05 })))
    .description('train and evaluate every method (Table 1) over seeds: accuracy with 95% t intervals, paired differences vs LoRKD')
    .option('--methods <list>', 'all | comma list of methods', 'all')
    .option('--seeds <list>', 'comma list of seeds', '0,1,2')
    .option('--ranks <list>', "LoRKD's ranks (Table 3): 4,8,16; with a rank per task, specs separated by ';' (\"8;breastmnist=4,retinamnist=16\")", '8')
    .option('--model <name>', 'backbone of every method but the foundation', 'shufflenet_v2_x1_0')
    .option('--foundation-arch <name>', "the foundation's architecture (resnet18, resnet50, vit_tiny_p8, vit_b_16, ...: docs/ARCHITECTURES.md)", 'resnet18')
    .option('--foundation <file>', "every seed's teacher: a foundation model file or any ONNX model (.onnx); default: each seed's own foundation run")
    .requiredOption('--out <dir>', 'compare directory (re-running continues where it stopped)');
  methodOptions(c, { rank: false, kdHelp: 'transfer loss of LoRKD and the KD baselines: feature | logits | none (LoRKD CE only)' });
  if (existsSync(TRANSFER_MODULE)) {
    c.option('--transfer <spec>', 'also fine-tune each method\'s deployed network of --transfer-task on DATA[:key=value]... (see lorkd transfer); repeat for several', (v: string, prev: string[]) => [...prev, v], [] as string[]);
    c.option('--transfer-task <name>', 'which task\'s deployed network is transferred (default: the first task)');
  }
  c.action((o) =>
    run(async () => {
      const data = toData(o);
      const seeds = intList('seeds', String(o.seeds));
      // Transfer settings are checked before any training: a typo must not cost the comparison.
      const plan = (o.transfer as string[]).length ? await planTransfer(o.transfer as string[], seeds, o.transferTask, data.tasks) : null;
      const r = await runCompare({
        ...data, methods: parseMethods(String(o.methods)), seeds, ranks: parseRankList(String(o.ranks)),
        model: o.model, foundationArch: o.foundationArch, foundation: o.foundation, teacher: teacherFlagsOf(o), kd: kdOf(o.kd), alpha: o.alpha, beta: o.beta, strategy: strategyOf(o.strategy),
        epochs: o.epochs, lr: o.lr, momentum: o.momentum, weightDecay: o.wd, patience: o.patience, checkpointSteps: o.checkpointEvery, out: o.out, progress: progressOf(o), ...runtimeOf(o, rt),
      });
      const transfer = plan ? await transferOf(r, plan, o.out, { progress: progressOf(o), ...runtimeOf(o, rt) }) : null;
      if (!o.json) {
        const t = compareTable(r);
        console.log(table(t.header, t.rows));
        console.log(`\naccuracy: mean over seeds ${r.seeds.join(',')} [95% t interval]; vs LoRKD: paired per-seed difference of the average. ${r.wall_seconds.toFixed(0)} s; ${path.join(o.out, 'compare.json')}`);
        if (transfer) console.log(`transfer: ${transfer.length} fine-tuning studies (starting points x specs) in ${path.join(o.out, 'transfer')} (lorkd report --compare ${o.out})`);
      } else console.log(JSON.stringify(transfer ? { ...r, transfer } : r));
    }),
  );
}

type TransferModule = typeof import('../experiments/transfer.js');
interface TransferPlan {
  mod: TransferModule;
  specs: { tag: string; spec: import('../experiments/transfer.js').TransferSpec }[];
  /** undefined: the comparison's first task. */
  task: string | undefined;
}

/** Parses every --transfer spec (each gets its folder tag) and checks --transfer-task against the suite. */
async function planTransfer(texts: string[], seeds: number[], task: string | undefined, taskSources: string[]): Promise<TransferPlan> {
  const mod = (await import(TRANSFER_MODULE)) as TransferModule;
  const specs = texts.map((text) => {
    const spec = mod.parseTransferSpec(text, seeds);
    return { tag: mod.specTag(spec), spec };
  });
  const twice = specs.find((x, i) => specs.findIndex((y) => y.tag === x.tag) !== i);
  if (twice) throw new UserError(`--transfer: two specs with the same settings (${twice.tag})`);
  // A named --transfer-task is checked against the suite's names now; the default is the comparison's first task.
  if (task !== undefined) {
    const names = loadTasks(taskSources).map((t) => t.name);
    if (!names.includes(task)) throw new UserError(`--transfer-task "${task}" is not one of ${names.join(', ')}`);
  }
  return { mod, specs, task };
}

/**
 * Fine-tunes each compared method's deployed network (its first seed's run), LoRKD's shared backbone
 * (when its run kept the decomposition) and the Baseline from scratch, once per spec: each spec is
 * its own study in OUT/transfer/<tag>/<label>/ (tag: data, shots, epochs, other settings).
 */
async function transferOf(r: CompareResult, plan: TransferPlan, out: string, run: TransferRunOptions): Promise<{ label: string; spec: string; result: unknown }[]> {
  // The compression ratio is against the comparison's own foundation (its first seed's run), when it was compared.
  const f = r.methods.foundation ? path.join(r.methods.foundation.runs[0]!, 'foundation.safetensors') : null;
  const foundation = f && existsSync(f) ? f : undefined;
  const task = plan.task ?? r.tasks[0]!;
  const sources: StudySource[] = Object.entries(r.methods).map(([key, m]) => ({ label: key, from: path.join(m.runs[0]!, 'deployed', `${task}.safetensors`), foundation }));
  // Table 2's other rows: LoRKD's shared backbone (the paper's dagger) and the Baseline, the same network from scratch.
  const dm = r.methods.lorkd && path.join(r.methods.lorkd.runs[0]!, DECOMPOSITION_FILE);
  if (dm && existsSync(dm)) sources.push({ label: 'lorkd-dagger', from: dm, backbone: true, foundation });
  sources.push({ label: 'baseline', from: 'scratch', model: String(r.budget.model), input: Number(r.budget.input), foundation });
  const rows: { label: string; spec: string; result: unknown }[] = [];
  for (const { tag, spec } of plan.specs) {
    const study = await plan.mod.transferStudy(spec, sources, { ...run, out: path.join(out, 'transfer', tag), resume: true });
    rows.push(...study.map((x) => ({ label: x.label, spec: tag, result: x.result })));
  }
  return rows;
}
