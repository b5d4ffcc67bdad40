// ONNX export numbers: export time and file size per architecture, and forward throughput of the
// exported file in onnxruntime-node beside lorkd's own forward on the same batch (both on one
// thread, measured in the same run: the machine is shared). Random weights with calibrated
// BatchNorm statistics; the max logit difference is reported as a check.
//   node dist/bench/onnx.js [--quick]
import * as ort from 'onnxruntime-node';
import { manualSeed, noGrad, rand, setNumThreads, tidy } from '../src/tensor/index.js';
import { createModel } from '../src/models/index.js';
import { BatchNorm2d } from '../src/nn/index.js';
import { expertToOnnx } from '../src/export/onnx/index.js';
import { machineLine, watchMachine } from './machine.js';

const quick = process.argv.includes('--quick');
setNumThreads(1);
const watch = watchMachine();

async function bench(arch: string, input: number, batch: number, reps: number): Promise<Record<string, number | string>> {
  manualSeed(0);
  const model = createModel(arch, { numClasses: 5 });
  for (const m of model.modules()) if (m instanceof BatchNorm2d) m.momentum = 1;
  noGrad(() => tidy(() => model.train().forward(rand([8, 3, input, input]).sub(0.5).div(0.25))));
  model.eval();
  const meta = { model: arch, task: 'bench', classNames: ['a', 'b', 'c', 'd', 'e'], inputSize: input, channels: 3, resize: 'bilinear' as const, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
  let t = performance.now();
  const bytes = expertToOnnx(model, meta);
  const exportMs = performance.now() - t;
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const x = rand([batch, 3, input, input]);
  const feed = { input: new ort.Tensor('float32', x.toArray() as Float32Array, x.shape) };
  const ref = noGrad(() => tidy(() => model.forward(x).toArray() as Float32Array));
  const got = (await session.run(feed)).logits!.data as Float32Array;
  let maxDiff = 0;
  for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - got[i]!));
  const time = async (f: () => unknown): Promise<number> => {
    await f();
    const s = performance.now();
    for (let r = 0; r < reps; r++) await f();
    return (performance.now() - s) / reps;
  };
  const lorkdMs = await time(() => noGrad(() => tidy(() => model.forward(x).toArray())));
  const ortMs = await time(() => session.run(feed));
  t = performance.now();
  await session.release();
  x.dispose();
  model.dispose();
  return {
    model: arch, input, batch,
    export_ms: Math.round(exportMs), file_mb: +(bytes.length / 2 ** 20).toFixed(2), max_logit_diff: maxDiff,
    lorkd_img_per_s: +((batch * 1000) / lorkdMs).toFixed(1), ort_img_per_s: +((batch * 1000) / ortMs).toFixed(1),
  };
}

const rows = [];
for (const [arch, input, batch] of (quick ? [['shufflenet_v2_x1_0', 64, 16]] : [['shufflenet_v2_x1_0', 64, 32], ['shufflenet_v2_x1_0', 224, 16], ['resnet18', 224, 16]]) as [string, number, number][]) {
  rows.push(await bench(arch, input, batch, quick ? 2 : 5));
}
console.log('| model | input | batch | export ms | file MB | max logit diff | lorkd img/s | onnxruntime img/s |\n|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.model} | ${r.input} | ${r.batch} | ${r.export_ms} | ${r.file_mb} | ${Number(r.max_logit_diff).toExponential(1)} | ${r.lorkd_img_per_s} | ${r.ort_img_per_s} |`);
const machine = watch.stop();
console.log(machineLine(machine));
console.log(JSON.stringify({ date: new Date().toISOString(), onnx: rows, machine }));
