// All-reduce cost of data-parallel LoRKD training: the gradient bytes of one step (backbone W0 +
// every task's expert factors + heads) and the time c10d takes to all-reduce them in DDP's 25 MiB
// buckets, for the decomposition model and for the plain network (MTL). Spawns its own ranks:
//   node dist/bench/dist-allreduce.js [--nproc 2] [--tasks 3] [--rank 8] [--backend gloo|nccl] [--iters 20]
// Prints one JSON line (rank 0). The README's scaling model takes these numbers.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { DecompositionModel } from '../src/lorkd/decomposition.js';
import { createModel } from '../src/models/registry.js';
import { zeros, parseDevice, DTYPE_BYTES } from '../src/tensor/index.js';
import { distEnv, ProcessGroup } from '../src/dist/index.js';
import type { Tensor } from '../src/tensor/index.js';

const arg = (name: string, d: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : d;
};

function timeAllReduce(group: ProcessGroup, grads: Tensor[], iters: number, bucketBytes: number): number {
  const buckets: Tensor[][] = [[]];
  let bytes = 0;
  for (const g of grads) {
    buckets.at(-1)!.push(g);
    bytes += g.numel * DTYPE_BYTES[g.dtype];
    if (bytes >= bucketBytes) (buckets.push([]), (bytes = 0));
  }
  const once = () => buckets.filter((b) => b.length).forEach((b) => group.allReduce(b, 'avg'));
  once();
  group.barrier();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) once();
  return (performance.now() - t0) / iters;
}

async function rank(): Promise<void> {
  const env = distEnv(process.env, parseDevice(process.env.LORKD_DEVICE))!;
  const group = ProcessGroup.init(env);
  const device = env.device;
  const T = Number(arg('tasks', '3'));
  const iters = Number(arg('iters', '20'));
  const dm = new DecompositionModel({ tasks: Array.from({ length: T }, (_, t) => ({ name: `t${t}`, classNames: ['a', 'b', 'c'] })), rank: Number(arg('rank', '8')) });
  const plain = createModel('shufflenet_v2_x1_0', { numClasses: 3 });
  const grads = (ps: Tensor[]) => ps.map((p) => zeros(p.shape).to(device));
  const g1 = grads(dm.parameters());
  const g2 = grads(plain.parameters());
  const bytes = (gs: Tensor[]) => gs.reduce((a, g) => a + g.numel * DTYPE_BYTES[g.dtype], 0);
  const lorkdMs = timeAllReduce(group, g1, iters, 25 << 20);
  const mtlMs = timeAllReduce(group, g2, iters, 25 << 20);
  if (env.rank === 0) {
    console.log(JSON.stringify({ world: env.worldSize, backend: env.backend, tasks: T, lorkd_grad_bytes: bytes(g1), lorkd_allreduce_ms: lorkdMs, mtl_grad_bytes: bytes(g2), mtl_allreduce_ms: mtlMs }));
  }
  group.barrier();
  group.destroy();
}

if (process.env.RANK !== undefined) {
  await rank();
} else {
  const n = Number(arg('nproc', '2'));
  const port = String(29800 + Math.floor(Math.random() * 150));
  const self = fileURLToPath(import.meta.url);
  await Promise.all(
    Array.from({ length: n }, (_, r) =>
      new Promise<void>((resolve, reject) => {
        const env = { ...process.env, RANK: String(r), LOCAL_RANK: String(r), WORLD_SIZE: String(n), MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, LORKD_DIST_BACKEND: arg('backend', 'gloo'), LORKD_NUM_THREADS: '1' };
        const c = spawn(process.execPath, [self, ...process.argv.slice(2)], { env, stdio: ['ignore', 'inherit', 'inherit'] });
        c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`rank ${r} exited with ${code}`))));
      }),
    ),
  );
}
