// A uint8 image resized without libtorch, giving the bytes images.ts's resizeImage gives (torch
// 1.13's F.interpolate bilinear, align_corners=False, no antialias, on the image as float32, then
// floor(v + 0.5)). The arithmetic is torch's CPU kernel's, found by comparing outputs: the source
// index scale * (d + 0.5) - 0.5 in double (scale = float32(in / out)), the weights float32, and
// each `t0 * w0 + t1 * w1` a fused multiply-add fma(t0, w0, t1 * w1), along the width first, then
// the height. test/pack-resize.test.ts checks it against resizeImage. Worker threads (lorkd pack)
// run it.
import type { Image } from './image-decode.js';

const f = Math.fround;
/** fma(a, b, c) for float32 values: a * b is exact in double; one rounding to double, then to float32. */
const fma = (a: number, b: number, c: number): number => f(a * b + c);

/** Source index pairs and float32 weights along one axis. */
function axis(inSize: number, outSize: number): { i0: Int32Array; i1: Int32Array; w0: Float32Array; w1: Float32Array } {
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const w0 = new Float32Array(outSize);
  const w1 = new Float32Array(outSize);
  const scale = f(inSize / outSize);
  for (let d = 0; d < outSize; d++) {
    const src = Math.max(0, scale * (d + 0.5) - 0.5);
    const lo = Math.min(Math.floor(src), inSize - 1);
    i0[d] = lo;
    i1[d] = lo < inSize - 1 ? lo + 1 : lo;
    w1[d] = Math.min(1, Math.max(0, src - lo));
    w0[d] = 1 - w1[d]!;
  }
  return { i0, i1, w0, w1 };
}

/** `img` resized to height x width (the image itself when it has that size already). */
export function resizeBilinear(img: Image, height: number, width: number): Image {
  if (img.height === height && img.width === width) return img;
  const { height: H, width: W, data } = img;
  const ys = axis(H, height);
  const xs = axis(W, width);
  const out = new Uint8Array(3 * height * width);
  for (let c = 0; c < 3; c++) {
    const plane = c * H * W;
    for (let y = 0; y < height; y++) {
      const r0 = plane + ys.i0[y]! * W;
      const r1 = plane + ys.i1[y]! * W;
      const a0 = ys.w0[y]!;
      const a1 = ys.w1[y]!;
      const o = (c * height + y) * width;
      for (let x = 0; x < width; x++) {
        const i = xs.i0[x]!;
        const j = xs.i1[x]!;
        const b0 = xs.w0[x]!;
        const b1 = xs.w1[x]!;
        const top = fma(data[r0 + i]!, b0, f(data[r0 + j]! * b1));
        const bottom = fma(data[r1 + i]!, b0, f(data[r1 + j]! * b1));
        const v = fma(top, a0, f(bottom * a1));
        out[o + x] = Math.min(255, Math.max(0, Math.floor(f(v + 0.5))));
      }
    }
  }
  return { height, width, data: out, grey: img.grey };
}
