// The settings of a method run: every option that changes its result is recorded in the run's
// folder (settings.json) when the run starts, and a run is only continued or read back under the
// same settings. `lorkd compare` re-run into the same --out with another --epochs or --input is
// refused in one line naming the differences, instead of reading back runs made otherwise and
// labelling them with the new options.
import { UserError } from '../tensor/errors.js';
import type { RunDir } from './run-dir.js';
import { methodSpec, type MethodName } from './methods/index.js';
import type { MethodRunOptions } from './run-method.js';

export const SETTINGS_FILE = 'settings.json';

/** What runSettings reads of a method run's options. */
export type SettingsSource = Pick<
  MethodRunOptions,
  'tasks' | 'input' | 'batch' | 'seed' | 'mean' | 'std' | 'model' | 'foundationArch' | 'epochs' | 'lr' | 'momentum' | 'weightDecay' | 'patience' | 'kd' | 'alpha' | 'beta' | 'rank' | 'loraAlpha' | 'precision'
>;

export type Settings = Record<string, unknown>;

/**
 * The settings that change a run's result. Options a method does not use are left out (a
 * foundation run is the same whatever --rank or --alpha say), so the runs a comparison shares
 * stay reusable.
 */
export function runSettings(name: MethodName, o: SettingsSource, usesTeacher: boolean): Settings {
  const spec = methodSpec(name);
  return {
    method: name,
    seed: o.seed,
    tasks: o.tasks,
    input: o.input,
    batch: o.batch,
    mean: o.mean ?? null,
    std: o.std ?? null,
    model: spec.arch === 'foundation' ? (o.foundationArch ?? 'resnet18') : o.model,
    epochs: o.epochs,
    lr: o.lr,
    momentum: o.momentum,
    weight_decay: o.weightDecay,
    patience: o.patience ?? null,
    ...(usesTeacher ? { kd: o.kd, alpha: o.alpha, beta: o.beta } : {}),
    ...(spec.options.includes('rank') ? { rank: o.rank ?? 8, lora_alpha: o.loraAlpha ?? null } : {}),
    // Recorded when not fp32, so runs of earlier versions (fp32, no record) stay reusable.
    ...(o.precision && o.precision !== 'fp32' ? { precision: o.precision } : {}),
  };
}

const show = (v: unknown): string => (v === undefined ? 'none' : JSON.stringify(v));

/** "epochs 1 there, 2 here; input 16 there, 32 here" for the keys whose values differ. */
export function settingsDiff(recorded: Settings, wanted: Settings): string[] {
  const keys = [...new Set([...Object.keys(wanted), ...Object.keys(recorded)])];
  return keys.filter((k) => show(recorded[k]) !== show(wanted[k])).map((k) => `${k} ${show(recorded[k])} there, ${show(wanted[k])} here`);
}

/** The settings an older run recorded in its result.json (before settings.json existed). */
function fromResult(r: Record<string, unknown>): Settings {
  return { method: r.method, seed: r.seed, input: r.input, epochs: r.epochs };
}

/**
 * Makes sure the run in `run` has `wanted` settings: a fresh run (no resume) records them; a
 * resumed or finished run must have recorded the same ones (an older run without settings.json:
 * the method, seed, input and epochs of its result), else one UserError naming the differences.
 */
export function checkRunSettings(run: RunDir, wanted: Settings, resume: boolean, resultFile: string): void {
  let recorded: Settings | null = null;
  if (resume && run.has(SETTINGS_FILE)) recorded = run.readJson<Settings>(SETTINGS_FILE);
  else if (resume && run.has(resultFile)) {
    const old = fromResult(run.readJson<Record<string, unknown>>(resultFile));
    recorded = { ...Object.fromEntries(Object.keys(wanted).filter((k) => !(k in old)).map((k) => [k, wanted[k]])), ...old };
  }
  if (recorded === null) {
    run.writeJson(SETTINGS_FILE, wanted);
    return;
  }
  const diff = settingsDiff(recorded, wanted);
  if (diff.length) {
    throw new UserError(`${run.root} holds a run made with other settings (${diff.join('; ')}): it is not reused; use another --out, or remove that folder to redo it`);
  }
}
