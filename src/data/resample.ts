// Crop-and-resize of decoded pixels for the JPEG-pack recipe (stream-worker.ts): Pillow's bilinear
// resampling (a triangle filter, widened when shrinking, so it antialiases like PIL; fixed-point
// coefficients of 22 bits; a horizontal pass rounded to uint8, then a vertical one), which is what
// torchvision's RandomResizedCrop and Resize do to a PIL image. It reads interleaved (HWC) pixels as
// decoded and writes the channel-major (CHW) planes of a batch row, mirrored when asked, in one go:
// no intermediate image, no copy. Plain TypeScript, so every stream worker thread runs it.
import type { CropBox } from './crop.js';

/** Fixed-point bits of a coefficient (Pillow's PRECISION_BITS for 8-bit images). */
const BITS = 22;
const HALF = 1 << (BITS - 1);

/** One axis's filter: for each output sample, its first source sample, count, and weights (ksize apart). */
interface Axis {
  first: Int32Array;
  count: Int32Array;
  weights: Int32Array;
  ksize: number;
}

/** Coefficients of resampling `inSize` source samples to `outSize` (Pillow's precompute_coeffs + normalize_coeffs_8bpc). */
function axis(inSize: number, outSize: number): Axis {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;
  const ksize = 2 * Math.ceil(support) + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const pre = new Float64Array(ksize);
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(centre - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(centre + support + 0.5));
    let sum = 0;
    for (let x = 0; x < hi - lo; x++) {
      const t = Math.abs((x + lo - centre + 0.5) / filterScale);
      pre[x] = t < 1 ? 1 - t : 0;
      sum += pre[x]!;
    }
    for (let x = 0; x < hi - lo; x++) weights[o * ksize + x] = Math.trunc(0.5 + (sum !== 0 ? pre[x]! / sum : pre[x]!) * (1 << BITS));
    first[o] = lo;
    count[o] = hi - lo;
  }
  return { first, count, weights, ksize };
}

const axes = new Map<string, Axis>();
/** Coefficients by (inSize, outSize), reused: crops repeat sizes, and a 224 px axis costs about 20 microseconds. */
function cachedAxis(inSize: number, outSize: number): Axis {
  const key = `${inSize}:${outSize}`;
  let a = axes.get(key);
  if (!a) {
    if (axes.size > 4096) axes.clear();
    axes.set(key, (a = axis(inSize, outSize)));
  }
  return a;
}

export interface HwcImage {
  data: Uint8Array;
  height: number;
  width: number;
  /** Samples per pixel: 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA); alpha is dropped, grey repeated into 3 planes. */
  channels: number;
}

/**
 * `box` of `src` resized to out x out with Pillow's bilinear filter, written as 3 planes (CHW) into
 * `dst` at byte `at`, mirrored left-right when `flip` (torchvision: resized crop, then flip).
 */
export function resizedCropInto(src: HwcImage, box: CropBox, out: number, flip: boolean, dst: Uint8Array, at: number): void {
  const sc = src.channels;
  const planes = sc >= 3 ? 3 : 1;
  const h = cachedAxis(box.width, out);
  const v = cachedAxis(box.height, out);
  // Source rows the vertical pass reads; the horizontal pass runs over just those rows, into one
  // plane per channel (so the vertical pass reads contiguous rows).
  const rowLo = v.first[0]!;
  const rows = v.first[out - 1]! + v.count[out - 1]! - rowLo;
  const tmp = new Uint8Array(planes * rows * out);
  const s = new Uint8Array(src.data.buffer, src.data.byteOffset, src.data.length);
  for (let c = 0; c < planes; c++) horizontal(s, (box.top + rowLo) * src.width * sc + box.left * sc + c, src.width * sc, sc, rows, h, out, tmp, c * rows * out);
  const plane = out * out;
  for (let c = 0; c < planes; c++) vertical(tmp, c * rows * out, rowLo, v, out, flip, dst, at + c * plane);
  if (planes === 1) {
    dst.copyWithin(at + plane, at, at + plane);
    dst.copyWithin(at + 2 * plane, at, at + plane);
  }
}

/** One channel's horizontal pass: `rows` source rows (from `s0`, `rowStride` apart, samples `step` apart) -> rows x out bytes at `t0`. */
function horizontal(s: Uint8Array, s0: number, rowStride: number, step: number, rows: number, a: Axis, out: number, tmp: Uint8Array, t0: number): void {
  const { first, count, weights: w, ksize } = a;
  for (let r = 0; r < rows; r++) {
    const base = s0 + r * rowStride;
    const t = t0 + r * out;
    for (let x = 0; x < out; x++) {
      const k0 = x * ksize;
      const n = count[x]!;
      let p = base + first[x]! * step;
      let acc = HALF;
      for (let k = 0; k < n; k++, p += step) acc += s[p]! * w[k0 + k]!;
      tmp[t + x] = acc <= 0 ? 0 : acc >= 1 << (BITS + 8) ? 255 : acc >> BITS;
    }
  }
}

/** One channel's vertical pass: rows x out bytes at `t0` (source row `rowLo` first) -> an out x out plane at `d0`, mirrored when `flip`. */
function vertical(tmp: Uint8Array, t0: number, rowLo: number, a: Axis, out: number, flip: boolean, dst: Uint8Array, d0: number): void {
  const { first, count, weights: w, ksize } = a;
  for (let y = 0; y < out; y++) {
    const k0 = y * ksize;
    const n = count[y]!;
    const r0 = t0 + (first[y]! - rowLo) * out;
    const d = d0 + y * out;
    for (let x = 0; x < out; x++) {
      let acc = HALF;
      for (let k = 0, p = r0 + x; k < n; k++, p += out) acc += tmp[p]! * w[k0 + k]!;
      dst[flip ? d + out - 1 - x : d + x] = acc <= 0 ? 0 : acc >= 1 << (BITS + 8) ? 255 : acc >> BITS;
    }
  }
}
