// This process's peak resident memory. Linux's getrusage maxrss (Node's resourceUsage().maxRSS)
// survives execve: a child spawned by a large parent reports at least the parent's RSS at the
// fork, whatever the child itself used. VmHWM in /proc/self/status is the high-water mark of
// this process's own address space, so it is read first; maxRSS only where there is no /proc.
import { readFileSync } from 'node:fs';

/** Peak resident set size of this process, MB (MiB). */
export function peakRssMb(): number {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // no /proc: below
  }
  return process.resourceUsage().maxRSS / 1024;
}
