// Resident memory from /proc. Linux's getrusage maxrss (Node's resourceUsage().maxRSS) survives
// execve: a child spawned by a large parent reports at least the parent's RSS at the fork,
// whatever the child itself used. VmHWM in /proc/PID/status is the high-water mark of the
// process's own address space, so it is read first; maxRSS only where there is no /proc.
import { readFileSync } from 'node:fs';

/** VmRSS and VmHWM (peak) of a process, MB (MiB); throws where /proc has no such process. */
export function procMemoryMb(pid: number | 'self'): { rss: number; peak: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)\\s+kB`, 'm').exec(s)?.[1] ?? 0) / 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/** Peak resident set size of this process, MB (MiB). */
export function peakRssMb(): number {
  try {
    const { peak } = procMemoryMb('self');
    if (peak > 0) return peak;
  } catch {
    // no /proc: below
  }
  return process.resourceUsage().maxRSS / 1024;
}
