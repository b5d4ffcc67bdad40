// One rank of the data-parallel equality test (test/dist.test.ts). Run as
//   RANK=r WORLD_SIZE=w MASTER_ADDR=127.0.0.1 MASTER_PORT=p node dist-worker.js OUT MODE [STEPS]
// MODE: plain (conv + linear, no BatchNorm), syncbn (conv + BatchNorm as SyncBatchNorm),
// after (per-step all-reduce after backward instead of the Reducer), bn (BatchNorm with per-rank
// statistics), die (rank 1 exits mid-run), dm (the decomposition model: 2 tasks, rank-2 experts,
// float64, task-sorted shards, SyncBatchNorm; its own loop below).
// Trains a tiny classifier with SGD on a fixed seeded data set, global batch 8, and writes the
// final weights to OUT (rank 0). WORLD_SIZE unset or 1: the same training in one process.
import { fileURLToPath } from 'node:url';
import { Module } from '../../src/nn/module.js';
import { Conv2d } from '../../src/nn/conv.js';
import { BatchNorm2d } from '../../src/nn/batchnorm.js';
import { Linear } from '../../src/nn/linear.js';
import { SGD } from '../../src/optim/index.js';
import { type Tensor, tensor, randn, randint, tidy, noGrad, manualSeed, relu, crossEntropy, adaptiveAvgPool2d, parseDevice } from '../../src/tensor/index.js';
import { DecompositionModel } from '../../src/lorkd/decomposition.js';
import { Routing, sortByTask } from '../../src/lorkd/routing.js';
import { saveSafetensors } from '../../src/io/safetensors.js';
import { distEnv, ProcessGroup, DistributedDataParallel, shardRange, collectiveError } from '../../src/dist/index.js';
import { userMessage } from '../../src/cli/output.js';

class Tiny extends Module {
  constructor(readonly bn: boolean) {
    super();
    this.registerModule('conv', new Conv2d(3, 6, 3, { padding: 1 }));
    if (bn) this.registerModule('norm', new BatchNorm2d(6));
    this.registerModule('fc', new Linear(6, 3));
  }
  forward(x: Tensor): Tensor {
    let h = this.getModule('conv').forward(x);
    if (this.bn) h = this.getModule('norm').forward(h);
    return this.getModule('fc').forward(adaptiveAvgPool2d(relu(h), 1).flatten(1));
  }
}

/** The decomposition model in float64 over task-sorted shards (each rank sorts its own rows). */
function trainDecomposition(group: ProcessGroup | null, out: string, steps: number): void {
  const rank = group?.rank ?? 0;
  const world = group?.worldSize ?? 1;
  manualSeed(2);
  const X = randn([32, 3, 32, 32], { dtype: 'float64' });
  const Y = randint(0, 2, [32]);
  const tasks = Array.from({ length: 32 }, (_, i) => (i * 7) % 3 === 0 ? 1 : 0);
  manualSeed(200 + rank);
  const dm = new DecompositionModel({ model: 'shufflenet_v2_x0_5', tasks: [{ name: 'a', classNames: ['x', 'y'] }, { name: 'b', classNames: ['x', 'y'] }], rank: 2, strategy: 'fused' }).toDtype('float64');
  // Experts start at B = 0; move them off zero so their gradients matter from the first step.
  noGrad(() => dm.expertConvs().forEach(([, c]) => c.getModule('expertB').parameters().forEach((b) => b.copy_(randn(b.shape, { dtype: 'float64' }).mul(0.02)))));
  const ddp = group ? new DistributedDataParallel(dm, group, { syncBn: true }) : null;
  const opt = new SGD(dm.parameters(), { lr: 0.05, momentum: 0.9 });
  dm.train();
  for (let s = 0; s < steps; s++) {
    tidy(() => {
      opt.zeroGrad();
      const [a, b] = shardRange(8, rank, world);
      const rows = Array.from({ length: b - a }, (_, i) => ((s * 8) % 32) + a + i);
      const { order, counts } = sortByTask(rows.map((r) => tasks[r]!), 2);
      const sorted = order.map((o) => rows[o]!);
      const idx = tensor(sorted, [sorted.length], { dtype: 'int64' });
      const routing = new Routing(counts);
      const out = dm.forwardRouted(X.indexSelect(0, idx), routing);
      const y = Y.indexSelect(0, idx);
      const parts = out.logits.flatMap((l, t) => (l ? [crossEntropy(l, y.narrow(0, routing.offsets[t]!, routing.counts[t]!), { reduction: 'sum' })] : []));
      const loss = parts.reduce((p, q) => p.add(q)).div(sorted.length);
      ddp?.beforeBackward(loss);
      loss.backward();
      opt.step();
    });
  }
  if (rank === 0) tidy(() => saveSafetensors(out, dm.stateDict()));
}

export async function main(out: string, mode: string, steps: number): Promise<void> {
  // LORKD_DEVICE=cuda: one GPU per rank (cuda:LOCAL_RANK) over NCCL, for bench/gpu-check.sh.
  const runDevice = parseDevice(process.env.LORKD_DEVICE);
  const env = distEnv(process.env, runDevice);
  const group = env ? ProcessGroup.init(env) : null;
  if (mode === 'dm') {
    trainDecomposition(group, out, steps);
    group?.barrier();
    group?.destroy();
    return;
  }
  const rank = group?.rank ?? 0;
  const world = group?.worldSize ?? 1;
  const device = env?.device ?? runDevice;
  manualSeed(1); // the data: the same on every rank
  const X = randn([32, 3, 6, 6]).to(device);
  const Y = randint(0, 3, [32]).to(device);
  manualSeed(100 + rank); // a different init per rank: DDP must broadcast rank 0's
  const net = new Tiny(mode === 'syncbn' || mode === 'bn').to(device);
  const ddp = group ? new DistributedDataParallel(net, group, { syncBn: mode === 'syncbn', bucketBytes: 256 }) : null;
  const opt = new SGD(net.parameters(), { lr: 0.1, momentum: 0.9 });
  net.train();
  for (let s = 0; s < steps; s++) {
    if (mode === 'die' && rank === 1 && s === 2) process.exit(3);
    tidy(() => {
      opt.zeroGrad();
      const lo = (s * 8) % 32;
      const [a, b] = shardRange(8, rank, world);
      const idx = tensor(Array.from({ length: b - a }, (_, i) => lo + a + i), [b - a], { dtype: 'int64' }).to(device);
      const loss = crossEntropy(net.forward(X.indexSelect(0, idx)), Y.indexSelect(0, idx));
      if (ddp && mode !== 'after') ddp.beforeBackward(loss);
      loss.backward();
      if (ddp && mode === 'after') ddp.allReduceGradients();
      opt.step();
    });
  }
  if (rank === 0) tidy(() => saveSafetensors(out, new Map([...net.stateDict()].map(([k, t]) => [k, t.to('cpu')]))));
  group?.barrier();
  group?.destroy();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    await main(process.argv[2]!, process.argv[3] ?? 'plain', Number(process.argv[4] ?? 6));
  } catch (e) {
    const env = distEnv(process.env, parseDevice(process.env.LORKD_DEVICE));
    const err = env ? collectiveError(e, env.rank, env.timeoutS) : e;
    const line = userMessage(err);
    if (line === null) throw err;
    console.error(`lorkd: ${line}`);
    process.exit(2);
  }
}
