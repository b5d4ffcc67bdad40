// Repeated timings on a shared host, whose speed drifts between two engines' runs (other
// tenants, invisible to /proc): each engine is timed in alternating rounds and a figure is the
// median of its rounds.

/** The median (the mean of the two middle values for an even count). */
export function median(v: readonly number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
