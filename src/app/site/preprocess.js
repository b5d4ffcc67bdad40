// The expert's input from a decoded image, exactly as lorkd makes it (src/export/predict.ts
// `preprocess`, src/data/transforms.ts): x = pixel / 255, resized bilinearly to S x S as torch
// F.interpolate(mode='bilinear', align_corners=False) without antialias, then per channel
// (x - mean) / std. Plain ES module with no imports: it runs in the page and in Node's tests.

/**
 * Source index pairs and weights of a 1-D bilinear resize from `inSize` to `outSize` samples
 * (align_corners=False: source = (i + 0.5) * in / out - 0.5, clamped at 0; torch's rule).
 */
export function bilinearAxis(inSize, outSize) {
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const w1 = new Float64Array(outSize);
  const scale = inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    const src = Math.max((i + 0.5) * scale - 0.5, 0);
    const a = Math.floor(src);
    i0[i] = a;
    i1[i] = a < inSize - 1 ? a + 1 : a;
    w1[i] = src - a;
  }
  return { i0, i1, w1 };
}

/**
 * uint8 CHW RGB (3 * height * width bytes) -> Float32Array (3 * S * S): the normalised input of
 * one image for an expert with preprocessing record `pre` ({ input_size, mean, std }).
 */
export function toInput(rgb, height, width, pre) {
  const S = pre.input_size;
  if (rgb.length !== 3 * height * width) throw new Error(`expected ${3 * height * width} bytes of CHW RGB, got ${rgb.length}`);
  const out = new Float32Array(3 * S * S);
  const same = height === S && width === S;
  const ys = same ? null : bilinearAxis(height, S);
  const xs = same ? null : bilinearAxis(width, S);
  const hw = height * width;
  for (let c = 0; c < 3; c++) {
    const m = pre.mean[c];
    const s = pre.std[c];
    const plane = rgb.subarray(c * hw, (c + 1) * hw);
    const o = c * S * S;
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        let v;
        if (same) v = plane[y * width + x] / 255;
        else {
          const ly = ys.w1[y];
          const lx = xs.w1[x];
          const r0 = ys.i0[y] * width;
          const r1 = ys.i1[y] * width;
          const a = plane[r0 + xs.i0[x]] / 255;
          const b = plane[r0 + xs.i1[x]] / 255;
          const d = plane[r1 + xs.i0[x]] / 255;
          const e = plane[r1 + xs.i1[x]] / 255;
          v = (1 - ly) * ((1 - lx) * a + lx * b) + ly * ((1 - lx) * d + lx * e);
        }
        out[o + y * S + x] = (v - m) / s;
      }
    }
  }
  return out;
}

/** Softmax of one row of logits, in float64. */
export function softmax(logits) {
  let mx = -Infinity;
  for (const v of logits) mx = Math.max(mx, v);
  const e = Array.from(logits, (v) => Math.exp(v - mx));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/** Index of the largest value (the first on ties), as lorkd predict picks the class. */
export function argmax(p) {
  let best = 0;
  for (let k = 1; k < p.length; k++) if (p[k] > p[best]) best = k;
  return best;
}
