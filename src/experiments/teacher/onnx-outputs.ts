// Which outputs of an ONNX teacher are its pooled features and its logits: named by
// --teacher-features / --teacher-logits, or else found by shape: an (N, C) output with C the
// suite's total classes is the logits, another (N, F) output the features. An output the run
// needs that cannot be told apart is a one-line error listing the outputs.
import { UserError } from '../../tensor/errors.js';
import type { TeacherOutput } from '../methods/spec.js';

/** An output and its shape after the batch dimension (measured on one image). */
export interface OutputShape {
  name: string;
  dims: number[];
}

export interface ChosenOutputs {
  features: OutputShape | null;
  logits: OutputShape | null;
}

export const listOutputs = (outs: OutputShape[]): string => outs.map((o) => `${o.name} [N${o.dims.map((d) => `, ${d}`).join('')}]`).join(', ');

/** The outputs chosen; `needs` decides which ambiguities are errors (an unneeded one is left unchosen). */
export function chooseOutputs(file: string, outs: OutputShape[], names: { features?: string; logits?: string }, totalClasses: number, needs: readonly TeacherOutput[]): ChosenOutputs {
  const named = (flag: string, name: string): OutputShape => {
    const o = outs.find((x) => x.name === name);
    if (!o) throw new UserError(`${file} has no output "${name}" (${flag}); outputs: ${listOutputs(outs)}`);
    if (o.dims.length !== 1) throw new UserError(`${file}: output "${name}" (${flag}) is [N${o.dims.map((d) => `, ${d}`).join('')}], not (N, F); outputs: ${listOutputs(outs)}`);
    return o;
  };
  const pick = (what: TeacherOutput, cands: OutputShape[]): OutputShape | null => {
    if (cands.length === 1) return cands[0]!;
    if (cands.length > 1 && needs.includes(what)) {
      const flag = what === 'features' ? '--teacher-features' : '--teacher-logits';
      throw new UserError(`${file}: ${cands.map((c) => c.name).join(', ')} could each be the ${what}: name one with ${flag} NAME; outputs: ${listOutputs(outs)}`);
    }
    return null;
  };
  const flat = outs.filter((o) => o.dims.length === 1);
  const features0 = names.features !== undefined ? named('--teacher-features', names.features) : null;
  const logits = names.logits !== undefined ? named('--teacher-logits', names.logits) : pick('logits', flat.filter((o) => o !== features0 && o.dims[0] === totalClasses));
  const features = features0 ?? pick('features', flat.filter((o) => o !== logits && o.dims[0] !== totalClasses));
  return { features, logits };
}
