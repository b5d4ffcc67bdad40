// Display names of the methods (the paper's, from each method's spec) and of the transfer study's
// other starting points, for tables and charts alike.
import { availableMethods, findMethodSpec, methodSpec } from '../experiments/methods/index.js';

const LABELS: Record<string, string> = {
  ...Object.fromEntries(availableMethods().map((n) => [n, methodSpec(n).label])),
  scratch: 'Baseline (scratch)',
  baseline: 'Baseline (scratch)',
  backbone: 'LoRKD backbone (†)',
  'lorkd-dagger': 'LoRKD backbone (†)',
};

/** "lorkd" -> "LoRKD", "lorkd-r4" -> "LoRKD (r=4)", "lorkd (r=8)" -> "LoRKD (r=8)", "foundation (task classes)" -> "Foundation (task classes)"; unknown names as they are. */
export function methodLabel(name: string): string {
  const r = /^(.+)-r(\d+)$/.exec(name);
  const ranked = r ? findMethodSpec(r[1]!) : null;
  if (ranked?.ranked) return `${ranked.label} (r=${r![2]})`;
  const m = /^([a-z-]+)(.*)$/.exec(name);
  if (!m) return name;
  const base = LABELS[m[1]!];
  return base ? base + m[2]! : name;
}
