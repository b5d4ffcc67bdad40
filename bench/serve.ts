// `lorkd serve` under load, on loopback: requests/s, p50/p99 latency, resident memory and the
// micro-batch sizes reached, for 1, 3, 10 and 30 departments in the mix (random-weight
// decompositions of that many tasks, dept0..deptN-1), with
//   eks        one service, the unfused decomposition model (mixed departments in one EKS pass),
//   fused      one service, one fused expert per department (batched per department),
//   auto       one service, choosing eks or fused per batch from its own measurements,
//   plain      one service process per department, each with its department's fused expert,
//   plain-ort  the deployment a user would otherwise pick: one process per department, each
//              serving its fused expert exported to ONNX through onnxruntime-node at the same
//              thread count, in a process without lorkd's engine (bench/ort-serve.ts: same
//              protocol, decode workers and micro-batching; libtorch never loaded).
// The load is a closed loop of `concurrency` clients, departments interleaved, PNG bodies from
// the bundled MedMNIST test splits; each run is bounded in time and in requests, after a warm-up.
// The machine line (bench/machine.ts) says whether other work was running meanwhile.
//   node dist/bench/serve.js [--departments 1,3,10,30] [--modes eks,plain-ort] [--seconds 6] [--json] ...
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { watchMachine, machineLine, type MachineLoad } from './machine.js';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PNG } from 'pngjs';
import { manualSeed, noGrad } from '../src/tensor/index.js';
import { BatchNorm2d } from '../src/nn/index.js';
import { DecompositionModel, saveDecomposition } from '../src/lorkd/index.js';
import { exportAllExperts } from '../src/export/export-experts.js';
import { expertFileToOnnx } from '../src/export/onnx/index.js';
import { loadMedMnist } from '../src/data/medmnist.js';
import { procMemoryMb } from '../src/io/peak-rss.js';

export type BenchMode = 'eks' | 'fused' | 'auto' | 'plain' | 'plain-ort';
export const BENCH_MODES: readonly BenchMode[] = ['eks', 'fused', 'auto', 'plain', 'plain-ort'];
/** Modes that run one process per department. */
const perDepartment = (m: BenchMode): boolean => m === 'plain' || m === 'plain-ort';

export interface ServeBenchOptions {
  /** The mixes: numbers of departments (default 1, 3, 10, 30). */
  departments?: number[];
  model?: string;
  input?: number;
  rank?: number;
  modes?: BenchMode[];
  concurrency?: number;
  /** Measured seconds per run (after the warm-up). */
  seconds?: number;
  warmupSeconds?: number;
  /** Most measured requests per run. */
  maxRequests?: number;
  maxBatch?: number;
  maxWaitMs?: number;
  /** libtorch intra-op threads of every service process. */
  threads?: number;
  /** Runs of every mix and mode (interleaved); the median by req/s is reported. */
  repeats?: number;
  log?: (s: string) => void;
}

export interface ServeBenchRow {
  mode: BenchMode;
  departments: number;
  processes: number;
  requests: number;
  errors: number;
  req_per_s: number;
  p50_ms: number;
  p99_ms: number;
  /** Resident memory after the run, all processes of the mode together. */
  rss_mb: number;
  /** Peak resident memory (VmHWM), all processes together. */
  peak_rss_mb: number;
  mean_batch: number;
  max_batch: number;
  /** State-dict bytes of the models held (lorkd_model_bytes), all processes together. */
  model_mb: number;
  /** req/s of every repetition (the row is the median one). */
  runs?: number[];
  /** auto only: share of requests served through EKS. */
  eks_share?: number;
  /** CPU seconds the load generator (the benchmark's own process) used during the run. */
  loadgen_cpu_s: number;
}

const BIN = fileURLToPath(new URL('../../bin/lorkd.js', import.meta.url));
const ORT_SERVE = fileURLToPath(new URL('./ort-serve.js', import.meta.url));

/** A decomposition checkpoint with random weights (experts, heads and BatchNorm statistics all non-trivial). */
function writeCheckpoint(file: string, T: number, model: string, rank: number, input: number): void {
  manualSeed(T);
  const tasks = Array.from({ length: T }, (_, i) => ({ name: `dept${i}`, classNames: ['a', 'b', 'c', 'd'].slice(0, 2 + (i % 3)) }));
  const dm = new DecompositionModel({ model, tasks, rank, strategy: 'fused' });
  try {
    noGrad(() => {
      for (const [, c] of dm.expertConvs()) c.getModule('expertB').parameters().forEach((b) => b.normal_(0, 0.02));
      for (const m of dm.modules()) if (m instanceof BatchNorm2d) m.getBuffer('running_var').uniform_(0.5, 1.5);
    });
    saveDecomposition(file, dm, { input_size: String(input), mean: '[0.5,0.5,0.5]', std: '[0.5,0.5,0.5]' });
    exportAllExperts(dm, path.join(path.dirname(file), `experts-${T}`), { input, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  } finally {
    dm.dispose();
  }
}

/** PNG bodies of bundled MedMNIST test images. */
function pngs(n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const name of ['breastmnist', 'pneumoniamnist', 'retinamnist']) {
    const s = loadMedMnist(name).splits.test;
    const hw = s.height * s.width;
    for (let k = 0; k < Math.ceil(n / 3); k++) {
      const src = s.images.subarray(k * 3 * hw, (k + 1) * 3 * hw);
      const data = Buffer.alloc(4 * hw);
      for (let p = 0; p < hw; p++) {
        data[4 * p] = src[p]!;
        data[4 * p + 1] = src[hw + p]!;
        data[4 * p + 2] = src[2 * hw + p]!;
        data[4 * p + 3] = 255;
      }
      out.push(new Uint8Array(PNG.sync.write({ width: s.width, height: s.height, data } as unknown as PNG)));
    }
  }
  return out;
}

interface Served {
  child: ChildProcess;
  url: string;
}

/** `lorkd serve ...args`, or (ort) bench/ort-serve.js ...args, once it listens. */
async function startServe(args: string[], threads: number, ort = false): Promise<Served> {
  const argv = ort ? [ORT_SERVE, ...args] : [BIN, 'serve', '--port', '0', '--json', '--quiet', ...args];
  const child = spawn(process.execPath, argv, {
    env: { ...process.env, LORKD_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (c) => reject(new Error(`${ort ? 'ort-serve' : 'lorkd serve'} exited ${c}: ${err.trim()}`)));
  });
  return { child, url: (JSON.parse(line) as { url: string }).url };
}




const percentile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

interface LoadResult {
  latencies: number[];
  errors: number;
  batches: number[];
  eks: number;
  seconds: number;
}

/** Closed-loop load: `concurrency` clients, request i goes to department i mod k. */
async function load(urlOf: (dept: number) => string, k: number, bodies: Uint8Array[], o: Required<Pick<ServeBenchOptions, 'concurrency' | 'seconds' | 'warmupSeconds' | 'maxRequests'>>): Promise<LoadResult> {
  const res: LoadResult = { latencies: [], errors: 0, batches: [], eks: 0, seconds: 0 };
  let next = 0;
  const warmEnd = performance.now() + o.warmupSeconds * 1000;
  const end = warmEnd + o.seconds * 1000;
  let measuredStart = Infinity;
  let measuredEnd = 0;
  const client = async () => {
    for (;;) {
      const now = performance.now();
      if (now >= end || res.latencies.length + res.errors >= o.maxRequests) return;
      const i = next++;
      const dept = i % k;
      const t0 = performance.now();
      let ok = false;
      let body: { batch?: number; servedBy?: string } = {};
      try {
        const r = await fetch(`${urlOf(dept)}/v1/predict?task=dept${dept}`, { method: 'POST', body: bodies[i % bodies.length]!, headers: { 'content-type': 'image/png' } });
        body = (await r.json()) as typeof body;
        ok = r.status === 200;
      } catch {
        ok = false;
      }
      const t1 = performance.now();
      if (t0 < warmEnd) continue;
      measuredStart = Math.min(measuredStart, t0);
      measuredEnd = Math.max(measuredEnd, t1);
      if (!ok) {
        res.errors++;
        continue;
      }
      res.latencies.push(t1 - t0);
      res.batches.push(body.batch ?? 0);
      if (body.servedBy === 'eks') res.eks++;
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, client));
  res.seconds = (measuredEnd - measuredStart) / 1000;
  return res;
}

export async function benchServe(opts: ServeBenchOptions = {}): Promise<{ rows: ServeBenchRow[]; goals: ServeGoal[]; settings: Record<string, unknown> & { machine: MachineLoad } }> {
  const o = {
    departments: [1, 3, 10, 30],
    model: 'shufflenet_v2_x1_0',
    input: 64,
    rank: 8,
    modes: [...BENCH_MODES],
    concurrency: 32,
    seconds: 6,
    warmupSeconds: 2,
    maxRequests: 5000,
    maxBatch: 32,
    maxWaitMs: 5,
    threads: 1,
    repeats: 1,
    log: (s: string) => process.stderr.write(`bench serve: ${s}\n`),
    ...opts,
  };
  for (const m of o.modes) if (!BENCH_MODES.includes(m)) throw new Error(`unknown mode "${m}"; modes: ${BENCH_MODES.join(', ')}`);
  const mixes = [...new Set(o.departments)].sort((a, b) => a - b);
  if (!mixes.every((k) => Number.isInteger(k) && k >= 1)) throw new Error(`--departments takes positive integers, got ${o.departments.join(',')}`);
  const watch = watchMachine();
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-bench-serve-'));
  const runs: ServeBenchRow[] = [];
  const bodies = pngs(48);
  const running: ChildProcess[] = [];
  const batching = ['--max-batch', String(o.maxBatch), '--max-wait-ms', String(o.maxWaitMs)];
  const common = [...batching, '--max-queue', String(Math.max(8 * o.maxBatch, 2 * o.concurrency))];
  const runOnce = async (mode: BenchMode, k: number): Promise<ServeBenchRow> => {
    let servers: Served[];
    if (perDepartment(mode)) {
      servers = await Promise.all(
        Array.from({ length: k }, (_, t) => {
          // --experts reads a folder: each process gets a folder with its department's file only
          // (plain-ort: that expert exported to ONNX, served by ort-serve.js).
          const one = path.join(dir, `${mode}-${k}-${t}`);
          mkdirSync(one, { recursive: true });
          const expert = path.join(dir, `experts-${k}`, `dept${t}.safetensors`);
          if (mode === 'plain-ort') return startServe(['--onnx', expertFileToOnnx(expert, path.join(one, `dept${t}.onnx`)), ...batching], o.threads, true);
          copyFileSync(expert, path.join(one, `dept${t}.safetensors`));
          return startServe(['--experts', one, '--mode', 'fused', ...common], o.threads);
        }),
      );
    } else {
      servers = [await startServe(['--decomposition', path.join(dir, `dm-${k}.safetensors`), '--mode', mode, ...common], o.threads)];
    }
    running.push(...servers.map((s) => s.child));
    try {
      const cpu0 = process.cpuUsage();
      const r = await load((d) => servers[perDepartment(mode) ? d : 0]!.url, k, bodies, o);
      const mem = servers.map((s) => procMemoryMb(s.child.pid!));
      const modelBytes = await Promise.all(servers.map(async (s) => Number(/^lorkd_model_bytes (\d+)$/m.exec(await (await fetch(`${s.url}/metrics`)).text())?.[1] ?? NaN)));
      const cpu = process.cpuUsage(cpu0);
      const lat = r.latencies.slice().sort((a, b) => a - b);
      const n = r.latencies.length;
      return {
        mode,
        departments: k,
        processes: servers.length,
        requests: n,
        errors: r.errors,
        req_per_s: n / r.seconds,
        p50_ms: percentile(lat, 0.5),
        p99_ms: percentile(lat, 0.99),
        rss_mb: mem.reduce((a, m) => a + m.rss, 0),
        peak_rss_mb: mem.reduce((a, m) => a + m.peak, 0),
        model_mb: modelBytes.reduce((a, b) => a + b, 0) / 2 ** 20,
        mean_batch: r.batches.reduce((a, b) => a + b, 0) / Math.max(1, n),
        max_batch: Math.max(0, ...r.batches),
        // The load generator (this process) shares the machine with the servers: its CPU time.
        loadgen_cpu_s: (cpu.user + cpu.system) / 1e6,
        ...(mode === 'auto' ? { eks_share: r.eks / Math.max(1, n) } : {}),
      };
    } finally {
      for (const s of servers) s.child.kill('SIGTERM');
      await Promise.all(servers.map((s) => new Promise((r) => (s.child.exitCode !== null ? r(null) : s.child.once('exit', r)))));
    }
  };
  try {
    for (const k of mixes) writeCheckpoint(path.join(dir, `dm-${k}.safetensors`), k, o.model, o.rank, o.input);
    // Repetitions interleave the modes, so a burst of load from elsewhere hits them alike.
    for (let rep = 0; rep < o.repeats; rep++) {
      for (const k of mixes) {
        for (const mode of o.modes) {
          o.log(`run ${rep + 1}/${o.repeats}: ${k} departments, ${mode}, ${o.warmupSeconds} s warm-up + ${o.seconds} s`);
          try {
            runs.push(await runOnce(mode, k));
          } catch (e) {
            o.log(`run failed, left out: ${(e as Error).message.split('\n')[0]}`);
          }
        }
      }
    }
  } finally {
    for (const c of running) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
  // Per mix and mode, the run with the median requests/s.
  const rows = mixes.flatMap((k) =>
    o.modes.map((mode) => {
      const mine = runs.filter((r) => r.departments === k && r.mode === mode).sort((a, b) => a.req_per_s - b.req_per_s);
      return mine.length ? [{ ...mine[Math.floor((mine.length - 1) / 2)]!, runs: mine.map((r) => Math.round(r.req_per_s * 10) / 10) }] : [];
    }),
  ).flat();
  const { log: _log, ...settings } = o;
  return { rows, goals: goalsOf(rows), settings: { ...settings, machine: watch.stop() } };
}

/** Issue 22's goal per mix: one eks service against one onnxruntime process per department. */
export interface ServeGoal {
  departments: number;
  /** eks req/s over plain-ort req/s (goal: at least 1.5 at 10 and 30 departments). */
  eks_over_plain_ort_req_per_s: number;
  /** eks resident MB over plain-ort's, all its processes together (goal: below 1). */
  eks_over_plain_ort_rss: number;
}

export function goalsOf(rows: ServeBenchRow[]): ServeGoal[] {
  return [...new Set(rows.map((r) => r.departments))].flatMap((k) => {
    const eks = rows.find((r) => r.departments === k && r.mode === 'eks');
    const ort = rows.find((r) => r.departments === k && r.mode === 'plain-ort');
    return eks && ort ? [{ departments: k, eks_over_plain_ort_req_per_s: eks.req_per_s / ort.req_per_s, eks_over_plain_ort_rss: eks.rss_mb / ort.rss_mb }] : [];
  });
}

const f = (v: number | undefined, d = 1): string => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(d));

/** The markdown table of the README. */
export function serveTable(rows: ServeBenchRow[]): string {
  const head = '| departments | mode | processes | req/s (runs) | p50 ms | p99 ms | RSS MB | model MB | mean batch | max batch | errors |\n|---|---|---|---|---|---|---|---|---|---|---|';
  return [
    head,
    ...rows.map(
      (r) =>
        `| ${r.departments} | ${r.mode}${r.eks_share !== undefined ? ` (${Math.round(100 * r.eks_share)}% eks)` : ''} | ${r.processes} | ${f(r.req_per_s)}${r.runs && r.runs.length > 1 ? ` (${r.runs.join(', ')})` : ''} | ${f(r.p50_ms)} | ${f(r.p99_ms)} | ${f(r.rss_mb, 0)} | ${f(r.model_mb)} | ${f(r.mean_batch)} | ${r.max_batch} | ${r.errors} |`,
    ),
  ].join('\n');
}

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const num = (k: string) => (argValue(k) !== undefined ? Number(argValue(k)) : undefined);
  const departments = argValue('departments')?.split(',').map(Number);
  const modes = argValue('modes')?.split(',') as BenchMode[] | undefined;
  const picked = Object.fromEntries(
    Object.entries({
      departments,
      input: num('input'),
      rank: num('rank'),
      concurrency: num('concurrency'),
      seconds: num('seconds'),
      warmupSeconds: num('warmup-seconds'),
      maxRequests: num('max-requests'),
      maxBatch: num('max-batch'),
      maxWaitMs: num('max-wait-ms'),
      threads: num('threads'),
      repeats: num('repeats'),
      model: argValue('model'),
      modes,
    }).filter(([, v]) => v !== undefined),
  ) as ServeBenchOptions;
  const r = await benchServe(picked);
  const goals = r.goals.map((g) => `${g.departments} departments: eks / plain-ort ${f(g.eks_over_plain_ort_req_per_s, 2)}x req/s, ${f(g.eks_over_plain_ort_rss, 2)}x resident memory`).join('\n');
  console.log(process.argv.includes('--json') ? JSON.stringify(r) : `${serveTable(r.rows)}\n\n${goals}${goals ? '\n' : ''}${machineLine(r.settings.machine)}\nsettings: ${JSON.stringify(r.settings)}`);
}
