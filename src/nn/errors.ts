// Typed errors of the nn layer.
import { UserError } from '../tensor/errors.js';

/** One state-dict entry whose shape differs from the model's tensor of the same name. */
export interface ShapeMismatch {
  key: string;
  /** The model's shape. */
  expected: number[];
  /** The checkpoint's shape. */
  got: number[];
}

const MAX_LISTED = 12;
function list(names: string[]): string {
  const shown = names.slice(0, MAX_LISTED).join(', ');
  return names.length > MAX_LISTED ? `${shown}, ... and ${names.length - MAX_LISTED} more` : shown;
}
const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/**
 * Module.loadStateDict found problems: every missing key, unexpected key and shape mismatch of
 * the whole module tree, in one error (as PyTorch's load_state_dict). The fields hold the full
 * lists; the one-line message lists up to 12 of each.
 */
export class StateDictError extends UserError {
  override name = 'StateDictError';
  constructor(
    readonly moduleName: string,
    readonly missing: string[],
    readonly unexpected: string[],
    readonly mismatched: ShapeMismatch[],
  ) {
    const parts: string[] = [];
    if (missing.length) parts.push(`${plural(missing.length, 'missing key')} (${list(missing)})`);
    if (unexpected.length) parts.push(`${plural(unexpected.length, 'unexpected key')} (${list(unexpected)})`);
    if (mismatched.length) {
      const m = mismatched.map((s) => `${s.key}: checkpoint [${s.got.join(', ')}] vs model [${s.expected.join(', ')}]`);
      parts.push(`${plural(mismatched.length, 'shape mismatch', 'shape mismatches')} (${list(m)})`);
    }
    super(`error loading state dict into ${moduleName}: ${parts.join('; ')}`);
  }
}
