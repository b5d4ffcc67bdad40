// One c10d process group per process (native/src/dist.cc: TCPStore + ProcessGroupGloo, or NCCL on
// a CUDA libtorch). Collectives are synchronous here: they return when the peers have answered,
// or throw a one-line UserError when a peer died or did not answer within the timeout.
import { native } from '../tensor/native.js';
import { Tensor } from '../tensor/tensor.js';
import { tensor, noGrad } from '../tensor/creation.js';
import { cat } from '../tensor/functional.js';
import { tidy } from '../tensor/scope.js';
import { UserError, TorchError } from '../tensor/errors.js';
import type { DistEnv } from './env.js';

/** Whether this build of the addon has c10d (built with gloo's headers). */
export function distAvailable(): boolean {
  return typeof native.distAvailable === 'function' && native.distAvailable() === true;
}

/**
 * A failed collective as one line: gloo reports a dead peer as "Connection closed by peer" (at
 * once) and a hung one as a timeout (after LORKD_DIST_TIMEOUT). Errors that are not about the
 * process group pass through unchanged.
 */
export function collectiveError(e: unknown, rank: number, timeoutS: number): unknown {
  if (!(e instanceof Error) || e instanceof UserError) return e;
  const msg = e.message.split('\n')[0]!;
  if (!/gloo|Connection closed|Connection reset|timed out|Timed out|NCCL|c10d/i.test(msg)) return e;
  return new UserError(`rank ${rank}: a peer process died or did not answer within ${timeoutS} s (${msg.replace(/^.*?\]\s*/, '').slice(0, 160)})`);
}

export class ProcessGroup {
  static #current: ProcessGroup | null = null;

  private constructor(readonly env: DistEnv) {}

  get rank(): number {
    return this.env.rank;
  }
  get worldSize(): number {
    return this.env.worldSize;
  }
  /** The device this rank's collectives run on (NCCL: its GPU). */
  get device(): string {
    return this.env.device ?? 'cpu';
  }

  /** Rendezvous with the other ranks (rank 0 hosts the store on MASTER_ADDR:MASTER_PORT). */
  static init(env: DistEnv): ProcessGroup {
    if (!distAvailable()) {
      throw new UserError('this lorkd build has no c10d: install libgloo-dev and rebuild (./bootstrap.sh)');
    }
    if (ProcessGroup.#current) return ProcessGroup.#current;
    const where = `${env.masterAddr}:${env.masterPort}`;
    try {
      native.distInit(env.backend, env.rank, env.worldSize, env.masterAddr, env.masterPort, env.timeoutS * 1000);
    } catch (e) {
      const msg = e instanceof Error ? e.message.split('\n')[0]! : String(e);
      if (/Address already in use|EADDRINUSE|bind/i.test(msg)) throw new UserError(`rank ${env.rank}: port ${env.masterPort} is in use on ${env.masterAddr} (choose another --master-port)`);
      if (/timed? ?out|Timeout|connect|Connection refused|resolve/i.test(msg)) {
        throw new UserError(`rank ${env.rank}: could not reach the master ${where} within ${env.timeoutS} s (${msg.slice(0, 160)})`);
      }
      throw new UserError(`rank ${env.rank}: rendezvous at ${where} failed: ${msg.slice(0, 200)}`);
    }
    ProcessGroup.#current = new ProcessGroup(env);
    return ProcessGroup.#current;
  }

  #run<R>(what: string, fn: () => R): R {
    try {
      return fn();
    } catch (e) {
      // A collective's failure (a TorchError, or the plain Error the c10d binding throws) is one line.
      if (e instanceof UserError || !(e instanceof Error)) throw e;
      const msg = e.message.split('\n')[0]!.replace(/^.*?\]\s*/, '').slice(0, 160);
      throw new UserError(`rank ${this.rank}: ${what} failed: a peer process died or did not answer within ${this.env.timeoutS} s (${msg})`);
    }
  }

  /** Sums (or averages) the tensors over all ranks, in place, in one collective. */
  allReduce(ts: Tensor[], op: 'sum' | 'avg' = 'sum'): void {
    if (ts.length === 0) return;
    this.#run('all-reduce', () => native.distAllreduce(ts.map((t) => t.handle), op === 'avg'));
  }

  /** Sum over ranks that autograd differentiates (its backward sums the gradients over ranks). */
  allReduceSumGrad(x: Tensor): Tensor {
    return this.#run('all-reduce', () => Tensor.wrap(native.distAllreduceSumGrad(x.handle)));
  }

  /** Copies rank `root`'s tensors into every rank's, in place: one collective per dtype. */
  broadcast(ts: Tensor[], root = 0): void {
    const byType = new Map<string, Tensor[]>();
    for (const t of ts) byType.set(t.dtype, [...(byType.get(t.dtype) ?? []), t]);
    for (const group of byType.values()) {
      if (group.length === 1) {
        this.#run('broadcast', () => native.distBroadcast([group[0]!.handle], root));
        continue;
      }
      noGrad(() =>
        tidy(() => {
          const flat = cat(group.map((t) => t.detach().reshape([-1])), 0);
          this.#run('broadcast', () => native.distBroadcast([flat.handle], root));
          let o = 0;
          for (const t of group) {
            t.copy_(flat.narrow(0, o, t.numel).reshape(t.shape));
            o += t.numel;
          }
        }),
      );
    }
  }

  /** A JSON value decided on rank `root` (e.g. the EKS strategy), the same on every rank. */
  broadcastJson<T>(value: T, root = 0): T {
    const bytes = this.rank === root ? new TextEncoder().encode(JSON.stringify(value ?? null)) : new Uint8Array(0);
    const len = tensor(new Float64Array([bytes.length]), [1], { device: this.device });
    let n: number;
    try {
      this.broadcast([len], root);
      n = len.item();
    } finally {
      len.dispose();
    }
    const buf = new Float64Array(n);
    if (this.rank === root) buf.set(bytes);
    const t = tensor(buf, [n], { device: this.device });
    try {
      this.broadcast([t], root);
      const out = Uint8Array.from(t.toArray() as Float64Array);
      return JSON.parse(new TextDecoder().decode(out)) as T;
    } finally {
      t.dispose();
    }
  }

  barrier(): void {
    this.#run('barrier', () => native.distBarrier());
  }

  destroy(): void {
    native.distDestroy();
    if (ProcessGroup.#current === this) ProcessGroup.#current = null;
  }
}
