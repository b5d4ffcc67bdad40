// Naive loop implementations of image ops on flat NCHW arrays: the independent side of the
// op tests. Written for clarity, not speed; only for tiny inputs.

export interface Img {
  data: number[];
  /** [N, C, H, W] */
  shape: [number, number, number, number];
}

const at = (x: Img, n: number, c: number, i: number, j: number): number => {
  const [, C, H, W] = x.shape;
  return x.data[((n * C + c) * H + i) * W + j]!;
};

function make(shape: [number, number, number, number], f: (n: number, c: number, i: number, j: number) => number): Img {
  const [N, C, H, W] = shape;
  const data: number[] = [];
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) data.push(f(n, c, i, j));
  return { data, shape };
}

export interface ConvArgs {
  stride?: [number, number];
  padding?: [number, number];
  dilation?: [number, number];
  groups?: number;
}

/** Cross-correlation as torch.nn.functional.conv2d, with zero padding. */
export function conv2dRef(x: Img, w: Img, bias: number[] | null, o: ConvArgs = {}): Img {
  const [s0, s1] = o.stride ?? [1, 1];
  const [p0, p1] = o.padding ?? [0, 0];
  const [d0, d1] = o.dilation ?? [1, 1];
  const g = o.groups ?? 1;
  const [N, , H, W] = x.shape;
  const [O, Cg, KH, KW] = w.shape;
  const Og = O / g;
  const HO = Math.floor((H + 2 * p0 - d0 * (KH - 1) - 1) / s0) + 1;
  const WO = Math.floor((W + 2 * p1 - d1 * (KW - 1) - 1) / s1) + 1;
  return make([N, O, HO, WO], (n, oc, i, j) => {
    const grp = Math.floor(oc / Og);
    let acc = bias ? bias[oc]! : 0;
    for (let c = 0; c < Cg; c++)
      for (let ki = 0; ki < KH; ki++)
        for (let kj = 0; kj < KW; kj++) {
          const y = i * s0 - p0 + ki * d0;
          const z = j * s1 - p1 + kj * d1;
          if (y < 0 || y >= H || z < 0 || z >= W) continue;
          acc += at(x, n, grp * Cg + c, y, z) * at(w, oc, c, ki, kj);
        }
    return acc;
  });
}

export interface PoolArgs {
  stride?: [number, number];
  padding?: [number, number];
  ceilMode?: boolean;
  countIncludePad?: boolean;
}

function poolSize(inp: number, k: number, s: number, p: number, ceil: boolean): number {
  const span = inp + 2 * p - k;
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceil && (out - 1) * s >= inp + p) out--; // the last window must start inside the input or left padding
  return out;
}

export function maxPool2dRef(x: Img, k: [number, number], o: PoolArgs = {}): Img {
  const [s0, s1] = o.stride ?? k;
  const [p0, p1] = o.padding ?? [0, 0];
  const [N, C, H, W] = x.shape;
  const HO = poolSize(H, k[0], s0, p0, !!o.ceilMode);
  const WO = poolSize(W, k[1], s1, p1, !!o.ceilMode);
  return make([N, C, HO, WO], (n, c, i, j) => {
    let m = -Infinity;
    for (let y = i * s0 - p0; y < i * s0 - p0 + k[0]; y++)
      for (let z = j * s1 - p1; z < j * s1 - p1 + k[1]; z++) if (y >= 0 && y < H && z >= 0 && z < W) m = Math.max(m, at(x, n, c, y, z));
    return m;
  });
}

export function avgPool2dRef(x: Img, k: [number, number], o: PoolArgs = {}): Img {
  const [s0, s1] = o.stride ?? k;
  const [p0, p1] = o.padding ?? [0, 0];
  const [N, C, H, W] = x.shape;
  const HO = poolSize(H, k[0], s0, p0, !!o.ceilMode);
  const WO = poolSize(W, k[1], s1, p1, !!o.ceilMode);
  return make([N, C, HO, WO], (n, c, i, j) => {
    const y0 = i * s0 - p0;
    const z0 = j * s1 - p1;
    // the window, clipped to the padded input, is the divisor when padding counts
    const y1 = Math.min(y0 + k[0], H + p0);
    const z1 = Math.min(z0 + k[1], W + p1);
    const padded = (y1 - y0) * (z1 - z0);
    let sum = 0;
    let count = 0;
    for (let y = Math.max(y0, 0); y < Math.min(y1, H); y++)
      for (let z = Math.max(z0, 0); z < Math.min(z1, W); z++) {
        sum += at(x, n, c, y, z);
        count++;
      }
    return sum / (o.countIncludePad === false ? count : padded);
  });
}

export function adaptiveAvgPool2dRef(x: Img, out: [number, number]): Img {
  const [N, C, H, W] = x.shape;
  return make([N, C, out[0], out[1]], (n, c, i, j) => {
    const y0 = Math.floor((i * H) / out[0]);
    const y1 = Math.ceil(((i + 1) * H) / out[0]);
    const z0 = Math.floor((j * W) / out[1]);
    const z1 = Math.ceil(((j + 1) * W) / out[1]);
    let sum = 0;
    for (let y = y0; y < y1; y++) for (let z = z0; z < z1; z++) sum += at(x, n, c, y, z);
    return sum / ((y1 - y0) * (z1 - z0));
  });
}

/** interpolate(mode='nearest'): source index floor(dst * in / out). */
export function nearestRef(x: Img, out: [number, number]): Img {
  const [N, C, H, W] = x.shape;
  return make([N, C, out[0], out[1]], (n, c, i, j) =>
    at(x, n, c, Math.min(Math.floor((i * H) / out[0]), H - 1), Math.min(Math.floor((j * W) / out[1]), W - 1)),
  );
}

/** interpolate(mode='bilinear') with align_corners false (half-pixel centres) or true. */
export function bilinearRef(x: Img, out: [number, number], alignCorners: boolean): Img {
  const [N, C, H, W] = x.shape;
  const src = (d: number, inp: number, o: number): number => {
    if (alignCorners) return o > 1 ? (d * (inp - 1)) / (o - 1) : 0;
    return Math.max(((d + 0.5) * inp) / o - 0.5, 0);
  };
  return make([N, C, out[0], out[1]], (n, c, i, j) => {
    const y = src(i, H, out[0]);
    const z = src(j, W, out[1]);
    const y0 = Math.floor(y);
    const z0 = Math.floor(z);
    const y1 = Math.min(y0 + 1, H - 1);
    const z1 = Math.min(z0 + 1, W - 1);
    const ly = y - y0;
    const lz = z - z0;
    return (
      (1 - ly) * ((1 - lz) * at(x, n, c, y0, z0) + lz * at(x, n, c, y0, z1)) +
      ly * ((1 - lz) * at(x, n, c, y1, z0) + lz * at(x, n, c, y1, z1))
    );
  });
}
