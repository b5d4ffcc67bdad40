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

/** Runs the node's processes; resolves with the exit code of the run (0 when every rank succeeded). */
export async function launch(o: LaunchOptions): Promise<number> {
  checkLaunch(o);
  if (o.nodeRank === 0) await checkPortFree(o.masterAddr, o.masterPort);
  const world = o.nproc * o.nnodes;
  const threads = process.env.LORKD_NUM_THREADS ?? String(Math.max(1, Math.floor(os.availableParallelism() / o.nproc)));
  const children: ChildProcess[] = [];
  let failed: { rank: number; code: number } | null = null;
  let stopping = false;
  const stopAll = (signal: NodeJS.Signals): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
  };
  const grace = (): void => {
    if (stopping) return;
    stopping = true;
    stopAll('SIGTERM');
    setTimeout(() => stopAll('SIGKILL'), 10_000).unref();
  };
  const onSignal = (sig: NodeJS.Signals) => () => {
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
      ...process.env,
      RANK: String(rank), WORLD_SIZE: String(world), LOCAL_RANK: String(local), LOCAL_WORLD_SIZE: String(o.nproc),
      MASTER_ADDR: o.masterAddr, MASTER_PORT: String(o.masterPort), LORKD_DIST_TIMEOUT: String(o.timeoutS), LORKD_NUM_THREADS: threads,
      ...(o.syncBn ? { LORKD_SYNC_BN: '1' } : {}),
      ...(o.overlap === false ? { LORKD_DDP_OVERLAP: '0' } : {}),
    };
    const child = spawn(o.argv[0]!, o.argv.slice(1), { env, stdio: ['ignore', rank === 0 ? 'inherit' : 'ignore', 'inherit'] });
    children.push(child);
    exits.push(
      new Promise<void>((resolve) => {
        child.on('exit', (code, signal) => {
          const c = code ?? (signal ? 128 + (os.constants.signals[signal] ?? 1) : 1);
          if (c !== 0 && failed === null && !stopping) {
            failed = { rank, code: c };
            o.log(`lorkd launch: rank ${rank} exited with ${signal ?? `code ${code}`}; stopping the other ranks`);
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
  const f = failed as { rank: number; code: number } | null;
  return f ? f.code : stopping ? 130 : 0;
}
