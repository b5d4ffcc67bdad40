// Crop boxes of the JPEG-pack recipe: RandomResizedCrop for training (torchvision's sampler: scale
// (0.08, 1), ratio (3/4, 4/3), ten tries, then a centred crop of the clamped ratio) and, for
// evaluation, the centred square of the shorter side. A box is a pure function of (seed, epoch,
// suite index) and the image's size, so every process, worker and resumed run draws the same one.
import { Rng } from './rng.js';

export interface CropBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** How the rows of a JPEG pack become fixed-size inputs: a random crop (training) or the centre. */
export type CropMode = { kind: 'random'; seed: number; epoch: number } | { kind: 'center' };

/** The centred square of side min(width, height). */
export function centerBox(width: number, height: number): CropBox {
  const s = Math.min(width, height);
  return { left: Math.floor((width - s) / 2), top: Math.floor((height - s) / 2), width: s, height: s };
}

/** torchvision's RandomResizedCrop.get_params over a width x height image, drawn from `rng`. */
export function randomResizedBox(width: number, height: number, rng: Rng, scale: [number, number] = [0.08, 1], ratio: [number, number] = [3 / 4, 4 / 3]): CropBox {
  const area = width * height;
  const logR = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let k = 0; k < 10; k++) {
    const target = area * (scale[0] + (scale[1] - scale[0]) * rng.float());
    const aspect = Math.exp(logR[0]! + (logR[1]! - logR[0]!) * rng.float());
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) return { left: rng.int(width - w + 1), top: rng.int(height - h + 1), width: w, height: h };
  }
  const r = width / height;
  let w = width;
  let h = height;
  if (r < ratio[0]) h = Math.round(w / ratio[0]);
  else if (r > ratio[1]) w = Math.round(h * ratio[1]);
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}

/** The box of suite index `index` under `mode`. */
export function cropBox(mode: CropMode, index: number, width: number, height: number): CropBox {
  return mode.kind === 'center' ? centerBox(width, height) : randomResizedBox(width, height, Rng.from(mode.seed, 'crop', mode.epoch, index));
}
