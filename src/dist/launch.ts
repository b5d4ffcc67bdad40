// `lorkd launch`: starts the N processes of one node of a data-parallel run, with torchrun's
// environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), and
// watches them: when one exits with an error, the others are stopped (SIGTERM, then SIGKILL after
// a grace period) and the launcher exits with that rank's code, so a run never hangs on a dead rank.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import { UserError } from '../tensor/errors.js';

export interface LaunchOptions {
  nproc: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /** Seconds a collective waits for a peer before failing (LORKD_DIST_TIMEOUT). */
  timeoutS: number;
  /** SyncBatchNorm in every rank (LORKD_SYNC_BN=1). */
  syncBn?: boolean;
  /** false: all-reduce the gradients once after backward instead of overlapping it (LORKD_DDP_OVERLAP=0; for measuring the overlap). */
  overlap?: boolean;
  /** The command line of each process (e.g. [node, bin/lorkd.js, decompose, ...]). */
  argv: string[];
  log: (line: string) => void;
}

/** Fails with one line when the master port cannot be bound on this (the master's) node. */
export async function checkPortFree(host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const s = net.createServer();
    s.once('error', (e: NodeJS.ErrnoException) => {
      reject(new UserError(e.code === 'EADDRINUSE' ? `port ${port} is in use on ${host} (choose another --master-port)` : `cannot listen on ${host}:${port}: ${e.code ?? e.message}`));
    });
    s.listen(port, host === 'localhost' ? '127.0.0.1' : host, () => s.close(() => resolve()));
  });
}

export function checkLaunch(o: LaunchOptions): void {
  if (o.nproc > 1024) throw new UserError(`--nproc ${o.nproc}: at most 1024 processes per node`);
  if (o.masterPort > 65535) throw new UserError(`--master-port ${o.masterPort} must be in [1, 65535]`);
  if (o.nodeRank >= o.nnodes) throw new UserError(`--node-rank ${o.nodeRank} must be below --nnodes ${o.nnodes}`);
  if (o.argv.length < 3) throw new UserError('lorkd launch needs a command to run, e.g. lorkd launch --nproc 2 decompose ...');
}

/** One rank's process: its stderr (the first local rank's is the launcher's own, the others' kept) and how it ended. */
interface Rank {
  rank: number;
  child: ChildProcess;
  /** Its stderr is the launcher's (progress bars on a terminal stay bars). */
  live: boolean;
  /** The last lines of a rank whose output is kept, not shown. */
  kept: string[];
  /** Whether it printed a one-line lorkd error (a live rank: it exited 2, 130 or 143, which always print one). */
  saidWhy: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Order in which it failed (0: first), or -1. */
  failedAt: number;
}

const KEPT_LINES = 50;

/** Keeps a (not live) rank's stderr line by line: the last KEPT_LINES. */
function keepStderr(r: Rank): void {
  let partial = '';
  r.child.stderr!.setEncoding('utf8');
  r.child.stderr!.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    for (const l of lines) {
      if (/^lorkd: /.test(l)) r.saidWhy = true;
      r.kept.push(l);
      if (r.kept.length > KEPT_LINES) r.kept.shift();
    }
  });
}

/**
 * The rank that caused a failed run: a rank that exited with a user error (code 2: its one
 * `lorkd:` line says why) before one that died of a consequence (a peer gone) or was stopped by
 * the launcher, the first local rank (whose lines were shown) before the others, else the first
 * that failed.
 */
function causeOf(ranks: Rank[]): Rank | null {
  const stopped = (r: Rank): boolean => r.code === 143 || r.signal === 'SIGTERM' || r.signal === 'SIGKILL';
  const failed = ranks
    .filter((r) => r.failedAt >= 0)
    .sort((a, b) => Number(b.code === 2) - Number(a.code === 2) || Number(stopped(a)) - Number(stopped(b)) || Number(b.live) - Number(a.live) || a.failedAt - b.failedAt);
  return failed[0] ?? null;
}

/**
 * Runs the node's processes; resolves with the exit code of the run (0 when every rank
 * succeeded). A failed run reports its cause once: the failing rank's own lines (the ranks
 * after the first only print when they are the cause), and a launcher line only when that rank
 * printed no `lorkd:` line of its own. libtorch's C++ log is kept to errors in the ranks unless
 * TORCH_CPP_LOG_LEVEL says otherwise.
 */
export async function launch(o: LaunchOptions): Promise<number> {
  checkLaunch(o);
  if (o.nodeRank === 0) await checkPortFree(o.masterAddr, o.masterPort);
  const world = o.nproc * o.nnodes;
  const threads = process.env.LORKD_NUM_THREADS ?? String(Math.max(1, Math.floor(os.availableParallelism() / o.nproc)));
  const ranks: Rank[] = [];
  let failures = 0;
  let stopping = false;
  const stopAll = (signal: NodeJS.Signals): void => {
    for (const r of ranks) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill(signal);
  };
  const grace = (): void => {
    if (stopping) return;
    stopping = true;
    stopAll('SIGTERM');
    setTimeout(() => stopAll('SIGKILL'), 10_000).unref();
  };
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals) => () => {
    signalled = true;
    o.log(`lorkd launch: ${sig}: stopping every rank`);
    grace();
  };
  const handlers = { SIGINT: onSignal('SIGINT'), SIGTERM: onSignal('SIGTERM') };
  process.on('SIGINT', handlers.SIGINT);
  process.on('SIGTERM', handlers.SIGTERM);
  const exits = [];
  for (let local = 0; local < o.nproc; local++) {
    const rank = o.nodeRank * o.nproc + local;
    const env = {
      TORCH_CPP_LOG_LEVEL: 'ERROR',
      ...process.env,
      RANK: String(rank), WORLD_SIZE: String(world), LOCAL_RANK: String(local), LOCAL_WORLD_SIZE: String(o.nproc),
      MASTER_ADDR: o.masterAddr, MASTER_PORT: String(o.masterPort), LORKD_DIST_TIMEOUT: String(o.timeoutS), LORKD_NUM_THREADS: threads,
      ...(o.syncBn ? { LORKD_SYNC_BN: '1' } : {}),
      ...(o.overlap === false ? { LORKD_DDP_OVERLAP: '0' } : {}),
    };
    const live = local === 0;
    const child = spawn(o.argv[0]!, o.argv.slice(1), { env, stdio: ['ignore', rank === 0 ? 'inherit' : 'ignore', live ? 'inherit' : 'pipe'] });
    const r: Rank = { rank, child, live, kept: [], saidWhy: false, code: null, signal: null, failedAt: -1 };
    ranks.push(r);
    if (!live) keepStderr(r);
    exits.push(
      new Promise<void>((resolve) => {
        child.on('close', (code, signal) => {
          r.code = code ?? (signal ? 128 + (os.constants.signals[signal] ?? 1) : 1);
          r.signal = signal;
          if (live) r.saidWhy = code === 2 || code === 130 || code === 143;
          if (r.code !== 0) {
            r.failedAt = failures++;
            grace();
          }
          resolve();
        });
      }),
    );
  }
  await Promise.all(exits);
  process.off('SIGINT', handlers.SIGINT);
  process.off('SIGTERM', handlers.SIGTERM);
  if (signalled) return 130;
  const cause = causeOf(ranks);
  if (!cause) return 0;
  if (!cause.live) for (const l of cause.kept) process.stderr.write(`${l}\n`);
  if (!cause.saidWhy) o.log(`lorkd launch: rank ${cause.rank} exited with ${cause.signal ?? `code ${cause.code}`}; the other ranks were stopped`);
  return cause.code!;
}
