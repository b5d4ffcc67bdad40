// How busy the machine was while a benchmark ran, so that a figure taken on a busy machine is
// flagged instead of copied into the README. Recorded: the load average before and after, the CPU
// time of this process and of its children (a benchmark's own PyTorch side, servers, ranks), and
// the CPU time everything else on the machine used meanwhile (from /proc/stat): the direct reading.
// Also the CPU model and its vector extensions: oneDNN and onnxruntime pick kernels by instruction
// set, so a ratio measured on one CPU says little about another (this project's machine changed
// from an AVX2 AMD EPYC to an AVX-512/AMX Intel Xeon on 2026-12-07).
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';

export interface MachineLoad {
  cores: number;
  /** The CPU's model name, as the OS reports it. */
  cpu?: string;
  /** Which of avx2, avx512f, avx512_bf16, amx_tile the CPU has (from /proc/cpuinfo; [] without it). */
  isa?: string[];
  loadavg_before: number;
  loadavg_after: number;
  wall_s: number;
  /** CPU seconds of this process and of its children that have exited. */
  own_cpu_s: number;
  /** CPU seconds of every other process while the benchmark ran (null without /proc). */
  others_cpu_s: number | null;
  /** others_cpu_s / wall_s: how many cores other work kept busy on average. */
  others_cores: number | null;
  busy: boolean;
  /** Why the run counts as busy ('' when quiet). */
  busy_reason: string;
}

/** Other work using more than this many cores on average marks the run busy. */
export const BUSY_OTHERS_CORES = 0.25;

const ISA = ['avx2', 'avx512f', 'avx512_bf16', 'amx_tile'];

/** The CPU's model name and which of ISA its flags list. */
export function cpuInfo(): { cpu: string; isa: string[] } {
  const cpu = os.cpus()[0]?.model.trim() || 'unknown';
  try {
    const flags = new Set(/^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.split(/\s+/) ?? []);
    return { cpu, isa: ISA.filter((f) => flags.has(f)) };
  } catch {
    return { cpu, isa: [] };
  }
}

const TICK = 100; // USER_HZ: the unit of /proc/stat and /proc/self/stat on Linux

function machineCpuS(): number | null {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already inside user)
    const busy = cpu[0]! + cpu[1]! + cpu[2]! + cpu[5]! + cpu[6]! + (cpu[7] ?? 0);
    return busy / TICK;
  } catch {
    return null;
  }
}

function ownCpuS(): number {
  try {
    // After the command's parenthesised name: fields 14-17 are utime, stime, cutime, cstime.
    const s = readFileSync('/proc/self/stat', 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ').map(Number);
    return (f[11]! + f[12]! + f[13]! + f[14]!) / TICK;
  } catch {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  }
}

export interface MachineWatch {
  stop(): MachineLoad;
}

/** Start watching; `stop()` once the benchmark and its children are done. */
export function watchMachine(): MachineWatch {
  const cores = os.availableParallelism();
  const before = { load: os.loadavg()[0]!, machine: machineCpuS(), own: ownCpuS(), t: performance.now() };
  return {
    stop(): MachineLoad {
      const wall = (performance.now() - before.t) / 1000;
      const own = ownCpuS() - before.own;
      const machine = machineCpuS();
      const others = machine === null || before.machine === null ? null : Math.max(0, machine - before.machine - own);
      const othersCores = others === null || wall <= 0 ? null : others / wall;
      const loadBefore = before.load;
      const reasons: string[] = [];
      if (othersCores !== null && othersCores > BUSY_OTHERS_CORES) reasons.push(`other processes used ${othersCores.toFixed(2)} of ${cores} cores during the run`);
      // The load average lags by a minute (a previous benchmark's own processes still count): the
      // direct reading decides where there is one, the load average only where there is none.
      if (othersCores === null && loadBefore > cores) reasons.push(`load average ${loadBefore.toFixed(2)} > ${cores} cores before it started`);
      return {
        cores,
        ...cpuInfo(),
        loadavg_before: round(loadBefore),
        loadavg_after: round(os.loadavg()[0]!),
        wall_s: round(wall),
        own_cpu_s: round(own),
        others_cpu_s: others === null ? null : round(others),
        others_cores: othersCores === null ? null : round(othersCores),
        busy: reasons.length > 0,
        busy_reason: reasons.join('; '),
      };
    },
  };
}

const round = (v: number) => Math.round(v * 100) / 100;

/** One line for a benchmark's human output; a busy run says not to quote it. */
export function machineLine(m: MachineLoad): string {
  const others = m.others_cores === null ? 'others: unknown (no /proc)' : `others used ${m.others_cores.toFixed(2)} cores`;
  const cpu = m.cpu ? ` (${m.cpu}${m.isa && m.isa.length > 0 ? `; ${m.isa.join(' ')}` : ''})` : '';
  const head = `machine: ${m.cores} cores${cpu}, load ${m.loadavg_before.toFixed(2)} -> ${m.loadavg_after.toFixed(2)}, ${others}, this benchmark ${m.own_cpu_s.toFixed(1)} CPU s in ${m.wall_s.toFixed(1)} s`;
  return m.busy ? `${head}\nBUSY MACHINE: ${m.busy_reason}. These figures are not comparable with a quiet run; do not quote them.` : `${head} (quiet)`;
}

/** Run a benchmark body under a watch: its result with `machine` added. */
export async function measured<T extends object>(body: () => T | Promise<T>): Promise<T & { machine: MachineLoad }> {
  const w = watchMachine();
  const r = await body();
  return { ...r, machine: w.stop() };
}
