// The tasks shipped in data/ (loadable by name) and the named suites of `--tasks`.
// data/medmnist: three MedMNIST v2 subsets at 28x28 (CC BY 4.0, data/medmnist/PROVENANCE.md);
// data/tasks64: bloodpbc, kneeoa, braintumor at 64x64 with INFO JSON beside each npz
// (CC BY 4.0 / CC BY 4.0 / CC0 1.0, data/tasks64/PROVENANCE.md).
import { UserError } from '../tensor/errors.js';

/** Tasks of data/tasks64 (each `<name>.npz` with `<name>.json`). */
export const TASKS64: readonly string[] = ['bloodpbc', 'kneeoa', 'braintumor'];

/** The six bundled tasks, six modalities: ultrasound, chest X-ray, fundus, microscopy, knee X-ray, MRI. */
export const MED6: readonly string[] = ['breastmnist', 'pneumoniamnist', 'retinamnist', ...TASKS64];

/** Names a `--tasks` entry may use for a whole suite. */
export const NAMED_SUITES: Readonly<Record<string, readonly string[]>> = { med6: MED6, all: MED6 };

/**
 * A `--tasks` list with every named suite (`med6`, `all`) replaced by its tasks, in place. A task
 * listed twice after expansion is refused (a suite holds each task once).
 */
export function expandTaskList(sources: readonly string[]): string[] {
  const out = sources.flatMap((s) => NAMED_SUITES[s.toLowerCase()] ?? [s]);
  const twice = out.find((s, i) => out.indexOf(s) !== i);
  if (twice !== undefined) {
    const named = sources.filter((s) => NAMED_SUITES[s.toLowerCase()]);
    throw new UserError(`--tasks: '${twice}' appears twice${named.length ? ` (${named.join(', ')} = ${MED6.join(',')})` : ''}`);
  }
  return out;
}
