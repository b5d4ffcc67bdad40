// Training-step time of the gradient/structure baselines against MTL (the same backbone and
// batches, one process, interleaved rounds, best of the rounds): what one backward per task
// (MoCo-MTL, Aligned-MTL) and KF's extra networks cost.
//   node dist/bench/methods.js [--batch 128] [--input 64] [--rounds 3] [--json]
import { performance } from 'node:perf_hooks';
import { manualSeed, randn, keep, tidy } from '../src/tensor/index.js';
import { SGD } from '../src/optim/index.js';
import { tensorRows } from '../src/experiments/methods/kd.js';
import { createMtl } from '../src/experiments/methods/mtl.js';
import { createMocoMtl } from '../src/experiments/methods/moco-mtl.js';
import { createAlignedMtl } from '../src/experiments/methods/aligned-mtl.js';
import { createKf } from '../src/experiments/methods/kf.js';
import type { Method, MethodContext } from '../src/experiments/methods/method.js';
import { taskBatch, TINY_TASKS } from '../test/helpers/methods-batch.js';
import { machineLine, watchMachine } from './machine.js';

const arg = (k: string, d: number): number => {
  const i = process.argv.indexOf(k);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const watch = watchMachine();
const batchSize = arg('--batch', 128);
const input = arg('--input', 64);
const rounds = arg('--rounds', 3);

manualSeed(0);
const features = keep(randn([batchSize, 512]));
const logits = keep(randn([batchSize, 7]));
const ctx: MethodContext = { tasks: TINY_TASKS, model: 'shufflenet_v2_x1_0', inChannels: 3, channelsLast: true, kd: { mode: 'feature', alpha: 10, beta: 1, features: tensorRows(features), logits: tensorRows(logits) } };
const third = Math.floor(batchSize / 3);
const batch = taskBatch([third, third, batchSize - 2 * third], input);
const nchw = batch.images;
batch.images = keep(nchw.contiguous('channels_last'));

const methods: [string, Method][] = [
  ['mtl', createMtl({ ...ctx, kd: null })],
  ['moco-mtl', createMocoMtl(ctx)],
  ['aligned-mtl', createAlignedMtl(ctx)],
  ['kf', createKf(ctx)],
];
const opts = methods.map(([, m]) => new SGD(m.module.parameters(), { lr: 0.01, momentum: 0.9 }));
const step = (i: number): number => {
  const t0 = performance.now();
  tidy(() => {
    methods[i]![1].module.zeroGrad();
    methods[i]![1].backward(batch).item();
    opts[i]!.step();
  });
  return performance.now() - t0;
};
methods.forEach((_, i) => step(i)); // warm-up
const best = methods.map(() => Infinity);
for (let r = 0; r < rounds; r++) methods.forEach((_, i) => (best[i] = Math.min(best[i]!, step(i))));
const rows = methods.map(([name, m], i) => ({ method: name, step_ms: best[i]!, img_per_s: (batchSize * 1000) / best[i]!, over_mtl: best[i]! / best[0]!, params_training: m.params().params_training }));
const machine = watch.stop();
if (process.argv.includes('--json')) console.log(JSON.stringify({ batch: batchSize, input, tasks: ctx.tasks.length, rows, machine }));
else {
  console.log(`\nbatch ${batchSize} at ${input}x${input}, ${ctx.tasks.length} tasks, shufflenet_v2_x1_0, channels_last, best of ${rounds}\n`);
  console.log('| method | step ms | img/s | step / MTL step | params (training) |\n|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.method} | ${r.step_ms.toFixed(0)} | ${r.img_per_s.toFixed(0)} | ${r.over_mtl.toFixed(2)} | ${(r.params_training / 1e6).toFixed(2)} M |`);
  console.log(machineLine(machine));
}
methods.forEach(([, m], i) => {
  opts[i]!.dispose();
  m.dispose();
});
batch.images.dispose();
batch.images = nchw;
batch.dispose();
features.dispose();
logits.dispose();
