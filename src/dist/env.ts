// The process's place in a distributed run, from the environment torchrun sets (RANK, WORLD_SIZE,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), so `lorkd launch` and a cluster
// scheduler that starts the processes itself look the same to a training command.
import { UserError } from '../tensor/errors.js';
import { deviceType, parseDevice } from '../tensor/device.js';

export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /** Seconds a collective (or the rendezvous) may wait for a peer before the run fails. */
  timeoutS: number;
  backend: 'gloo' | 'nccl';
  /** This rank's device: 'cpu', or its own GPU (cuda:LOCAL_RANK) when the run's device is CUDA. */
  device: string;
}

/**
 * The device of one rank of a run on `device`: the CPU stays the CPU; 'cuda' becomes the rank's
 * own GPU, cuda:LOCAL_RANK (as torchrun scripts do). An explicit 'cuda:N' is kept only when the
 * node runs one process, since several ranks on one GPU would be an error that shows up late.
 */
export function rankDevice(device: string, localRank: number, localWorldSize = 1): string {
  const d = parseDevice(device);
  if (deviceType(d) === 'cpu') return d;
  if (d === 'cuda') return `cuda:${localRank}`;
  if (localWorldSize > 1) throw new UserError(`--device ${d} with ${localWorldSize} processes per node: give --device cuda (each rank takes cuda:LOCAL_RANK)`);
  return d;
}

/** The collective backend for a device: NCCL on CUDA, Gloo on the CPU. */
export function distBackend(device: string): 'gloo' | 'nccl' {
  return deviceType(parseDevice(device)) === 'cuda' ? 'nccl' : 'gloo';
}

function intVar(env: NodeJS.ProcessEnv, name: string, min: number, max: number): number {
  const s = env[name];
  const v = Number(s);
  if (s === undefined || s.trim() === '' || !Number.isInteger(v) || v < min || v > max) {
    throw new UserError(`${name}=${s ?? ''} must be an integer in [${min}, ${max}]`);
  }
  return v;
}

/**
 * The distributed environment, or null when this process runs alone (no WORLD_SIZE, or 1).
 * `device` is the run's device (--device): it gives each rank its device and the backend
 * (NCCL for CUDA); LORKD_DIST_BACKEND overrides the backend.
 */
export function distEnv(env: NodeJS.ProcessEnv = process.env, device = 'cpu'): DistEnv | null {
  if (env.WORLD_SIZE === undefined) return null;
  const worldSize = intVar(env, 'WORLD_SIZE', 1, 65536);
  if (worldSize === 1) return null;
  const rank = intVar(env, 'RANK', 0, worldSize - 1);
  const localWorldSize = env.LOCAL_WORLD_SIZE === undefined ? worldSize : intVar(env, 'LOCAL_WORLD_SIZE', 1, worldSize);
  const localRank = env.LOCAL_RANK === undefined ? rank % localWorldSize : intVar(env, 'LOCAL_RANK', 0, localWorldSize - 1);
  const masterAddr = env.MASTER_ADDR ?? '127.0.0.1';
  if (!/^[A-Za-z0-9.\-:]+$/.test(masterAddr)) throw new UserError(`MASTER_ADDR=${masterAddr} is not a host name or address`);
  const masterPort = env.MASTER_PORT === undefined ? 29500 : intVar(env, 'MASTER_PORT', 1, 65535);
  const timeoutS = env.LORKD_DIST_TIMEOUT === undefined ? 120 : intVar(env, 'LORKD_DIST_TIMEOUT', 1, 86400);
  const backend = env.LORKD_DIST_BACKEND ?? distBackend(device);
  if (backend !== 'gloo' && backend !== 'nccl') throw new UserError(`LORKD_DIST_BACKEND=${backend} must be gloo or nccl`);
  if (backend === 'nccl' && deviceType(parseDevice(device)) === 'cpu') throw new UserError('the NCCL backend needs CUDA tensors: run with --device cuda (or LORKD_DIST_BACKEND=gloo)');
  return { rank, worldSize, localRank, localWorldSize, masterAddr, masterPort, timeoutS, backend, device: rankDevice(device, localRank, localWorldSize) };
}
