// One decoded image -> the model input its preprocessing record describes: float32 (3, S, S),
// bilinear (torch F.interpolate, align_corners=False, no antialias, as the batch transforms), then
// (pixel / 255 - mean) / std. Only the output's S x S points are computed, each from the four
// source pixels around it, so the work and memory are O(S^2) for any source shape: a 1 x 67M
// image costs what a 28 x 28 one does. No libtorch: the serve decode workers run it too.
import type { Image } from './image-decode.js';

export interface InputSpec {
  /** Side S of the square input. */
  inputSize: number;
  /** Per-channel normalisation of pixels scaled to [0, 1]. */
  mean: readonly number[];
  std: readonly number[];
}

/** Source index pairs and weights along one axis (torch's area_pixel_compute_source_index). */
function axis(inSize: number, outSize: number): { i0: Int32Array; i1: Int32Array; w1: Float64Array } {
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const w1 = new Float64Array(outSize);
  const scale = Math.fround(inSize / outSize);
  for (let d = 0; d < outSize; d++) {
    const src = inSize === outSize ? d : Math.max(0, Math.fround(Math.fround(scale * (d + 0.5)) - 0.5));
    const lo = Math.min(Math.floor(src), inSize - 1);
    i0[d] = lo;
    i1[d] = lo < inSize - 1 ? lo + 1 : lo;
    w1[d] = src - lo;
  }
  return { i0, i1, w1 };
}

/** The model input (3 * S * S float32, channel-major) of `img` under `p`. */
export function imageToInput(img: Image, p: InputSpec): Float32Array {
  const S = p.inputSize;
  const { height: H, width: W, data } = img;
  const ys = axis(H, S);
  const xs = axis(W, S);
  const out = new Float32Array(3 * S * S);
  for (let c = 0; c < 3; c++) {
    const plane = c * H * W;
    const m = p.mean[c]!;
    const sd = p.std[c]!;
    for (let y = 0; y < S; y++) {
      const r0 = plane + ys.i0[y]! * W;
      const r1 = plane + ys.i1[y]! * W;
      const wy = ys.w1[y]!;
      for (let x = 0; x < S; x++) {
        const a = xs.i0[x]!;
        const b = xs.i1[x]!;
        const wx = xs.w1[x]!;
        const top = (1 - wx) * data[r0 + a]! + wx * data[r0 + b]!;
        const bottom = (1 - wx) * data[r1 + a]! + wx * data[r1 + b]!;
        out[(c * S + y) * S + x] = (((1 - wy) * top + wy * bottom) / 255 - m) / sd;
      }
    }
  }
  return out;
}
