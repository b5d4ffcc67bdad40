// Fixtures of the app tests: two departments' experts (calibrated random ShuffleNetV2s, written
// as lorkd expert files and, through lorkd's ONNX exporter, as .onnx) and a few image files: PNGs
// of the bundled MedMNIST test splits (grey and RGB), a MedNIST JPEG, an odd-sized RGB PNG, and a
// file that is no image at all.
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';
import { manualSeed, noGrad, rand, tidy } from '../src/tensor/index.js';
import { createModel } from '../src/models/index.js';
import { BatchNorm2d } from '../src/nn/index.js';
import { type ExpertMeta, saveExpertFile } from '../src/export/expert-file.js';
import { saveOnnx } from '../src/export/onnx/export.js';
import { loadMedMnist, medmnistDir, MEDMNIST_INFO, packageRoot } from '../src/data/medmnist.js';
import { lcg } from './helpers/random.js';

export interface FixtureExpert {
  meta: ExpertMeta;
  safetensors: string;
  onnx: string;
  /** Image files this department's expert is run on in the tests. */
  images: string[];
}

export interface AppFixture {
  expertsDir: string;
  experts: FixtureExpert[];
  /** A file with a .png name that is not an image. */
  bad: string;
}

const classNames = (task: string): string[] => [...MEDMNIST_INFO[task]!.labels];

/**
 * A calibrated random expert: at initialisation the logits hardly depend on the image, so the
 * BatchNorm statistics are set from one random batch (momentum 1) and the probabilities differ
 * between images; the head is scaled down (see below). Written as `<dir>/<task>.safetensors` and `<experts>/<task>.onnx`.
 */
function makeExpert(dir: string, expertsDir: string, meta: ExpertMeta, seed: number): Pick<FixtureExpert, 'safetensors' | 'onnx'> {
  manualSeed(seed);
  const m = createModel(meta.model, { numClasses: meta.classNames.length });
  try {
    for (const mod of m.modules()) if (mod instanceof BatchNorm2d) mod.momentum = 1;
    noGrad(() => tidy(() => m.train().forward(rand([8, 3, meta.inputSize, meta.inputSize]).sub(0.5).div(0.25))));
    // Smaller head weights: probabilities away from 0 and 1 (so a 1e-4 comparison means
    // something). Rows centred over the classes and no bias: the logits sum to 0, so the predicted
    // class's mean activation is >= 0 and its map is not all zero after the ReLU.
    noGrad(() =>
      tidy(() => {
        const w = m.fc.weight;
        w.add_(w.mean(0, true), -1).mul_(0.1);
        m.fc.bias?.zero_();
      }),
    );
    m.eval();
    const safetensors = path.join(dir, `${meta.task}.safetensors`);
    saveExpertFile(safetensors, m, meta);
    const onnx = saveOnnx(path.join(expertsDir, `${meta.task}.onnx`), m, meta);
    return { safetensors, onnx };
  } finally {
    m.dispose();
  }
}

/** Writes uint8 CHW images of a MedMNIST split as PNGs (grey colour type when the source is grey). */
function splitPngs(dir: string, task: string, indices: number[]): string[] {
  const d = loadMedMnist(path.join(medmnistDir(), `${task}.npz`));
  const s = d.splits.test;
  const hw = s.height * s.width;
  return indices.map((i) => {
    const chw = s.images.subarray(i * 3 * hw, (i + 1) * 3 * hw);
    const file = path.join(dir, `${task}-test-${i}.png`);
    if (d.sourceChannels === 1) {
      writeFileSync(file, PNG.sync.write({ width: s.width, height: s.height, data: Buffer.from(chw.subarray(0, hw)) } as PNG, { colorType: 0, inputColorType: 0, inputHasAlpha: false }));
    } else {
      const rgb = Buffer.alloc(3 * hw);
      for (let p = 0; p < hw; p++) for (let c = 0; c < 3; c++) rgb[3 * p + c] = chw[c * hw + p]!;
      writeFileSync(file, PNG.sync.write({ width: s.width, height: s.height, data: rgb } as PNG, { colorType: 2, inputColorType: 2, inputHasAlpha: false }));
    }
    return file;
  });
}

/** A random RGB PNG of an odd size (downscaled on one axis, upscaled on the other). */
function oddPng(file: string, w: number, h: number, seed: number): string {
  const r = lcg(seed);
  const rgb = Buffer.from(Uint8Array.from({ length: w * h * 3 }, () => Math.floor(r() * 256)));
  writeFileSync(file, PNG.sync.write({ width: w, height: h, data: rgb } as PNG, { colorType: 2, inputColorType: 2, inputHasAlpha: false }));
  return file;
}

/** Builds the fixture under `dir` (a fresh temporary folder). */
export function makeAppFixture(dir: string): AppFixture {
  const expertsDir = path.join(dir, 'experts');
  const images = path.join(dir, 'images');
  mkdirSync(expertsDir, { recursive: true });
  mkdirSync(images, { recursive: true });
  const base = { channels: 3, resize: 'bilinear' as const, inputSize: 64 };
  const breastMeta: ExpertMeta = { ...base, model: 'shufflenet_v2_x1_0', task: 'breastmnist', classNames: classNames('breastmnist'), mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
  const retinaMeta: ExpertMeta = { ...base, model: 'shufflenet_v2_x0_5', task: 'retinamnist', classNames: classNames('retinamnist'), mean: [0.45, 0.5, 0.55], std: [0.2, 0.25, 0.3] };
  const hand = path.join(packageRoot(), 'data', 'mednist', 'test', 'Hand');
  const jpeg = path.join(images, 'mednist-hand.jpeg');
  copyFileSync(path.join(hand, readdirSync(hand).filter((f) => f.endsWith('.jpeg')).sort()[0]!), jpeg);
  const breast: FixtureExpert = {
    meta: breastMeta,
    ...makeExpert(dir, expertsDir, breastMeta, 1),
    images: [...splitPngs(images, 'breastmnist', [0, 1, 2]), jpeg, oddPng(path.join(images, 'odd-45x70.png'), 45, 70, 7)],
  };
  const retina: FixtureExpert = { meta: retinaMeta, ...makeExpert(dir, expertsDir, retinaMeta, 2), images: splitPngs(images, 'retinamnist', [0, 1]) };
  const bad = path.join(images, 'not-an-image.png');
  writeFileSync(bad, 'this is not a PNG\n');
  return { expertsDir, experts: [breast, retina], bad };
}
