// Display names of the methods (the paper's), for tables and charts alike.
const LABELS: Record<string, string> = {
  foundation: 'Foundation',
  stl: 'STL',
  mtl: 'MTL',
  'stl-kd': 'STL-KD',
  'mtl-kd': 'MTL-KD',
  'moco-mtl': 'MoCo-MTL',
  'aligned-mtl': 'Aligned-MTL',
  kf: 'KF',
  lorkd: 'LoRKD',
  scratch: 'Baseline (scratch)',
  baseline: 'Baseline (scratch)',
  backbone: 'LoRKD backbone (†)',
  'lorkd-dagger': 'LoRKD backbone (†)',
};

/** "lorkd" -> "LoRKD", "lorkd-r4" -> "LoRKD (r=4)", "lorkd (r=8)" -> "LoRKD (r=8)", "foundation (task classes)" -> "Foundation (task classes)"; unknown names as they are. */
export function methodLabel(name: string): string {
  const r = /^lorkd-r(\d+)$/.exec(name);
  if (r) return `LoRKD (r=${r[1]})`;
  const m = /^([a-z-]+)(.*)$/.exec(name);
  if (!m) return name;
  const base = LABELS[m[1]!];
  return base ? base + m[2]! : name;
}
