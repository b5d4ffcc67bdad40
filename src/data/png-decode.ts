// PNG pixels -> the data layer's uint8 CHW RGB planes, in a fixed number of allocations whatever
// the image's shape: the scanlines that parsePng inflated (with their bound) are unfiltered in
// place, and each pixel is written straight into the three output planes. (pngjs, used before,
// made JavaScript objects per row: a 1 x 67,108,864 image, legal under the pixel limit, needed
// more than 5 GB of heap.) Memory: the inflated scanlines plus 3 bytes per pixel; time: linear in
// the bytes. The output is pngjs's exactly (test/png-decode.test.ts compares them): grey repeated into
// R = G = B, palettes resolved, alpha dropped, a tRNS colour key black, samples of other depths
// scaled to 8 bits as floor(v * 255 / (2^depth - 1) + 0.5).
import { UserError } from '../tensor/errors.js';
import { ADAM7, COLOR_TYPES, parsePng, scanlineBytes } from './png-header.js';

/** Decoded RGB planes (3 * width * height bytes) and whether the file is greyscale. */
export interface PngPixels {
  width: number;
  height: number;
  data: Uint8Array;
  grey: boolean;
}

const paeth = (a: number, b: number, c: number): number => {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
};

/**
 * Unfilters `rows` scanlines of `stride` bytes (filter byte first) starting at `at`, in place;
 * `bpp` is the filter's bytes per pixel (at least 1). Returns false on an unknown filter type.
 */
function unfilter(buf: Uint8Array, at: number, rows: number, stride: number, bpp: number): boolean {
  for (let r = 0; r < rows; r++) {
    const row = at + r * stride + 1;
    const up = row - stride; // the previous row's first byte (unused on the first row)
    const n = stride - 1;
    const type = buf[row - 1]!;
    const first = r === 0;
    if (type === 0) continue;
    if (type === 1) {
      for (let i = bpp; i < n; i++) buf[row + i] = (buf[row + i]! + buf[row + i - bpp]!) & 0xff;
    } else if (type === 2) {
      if (!first) for (let i = 0; i < n; i++) buf[row + i] = (buf[row + i]! + buf[up + i]!) & 0xff;
    } else if (type === 3) {
      for (let i = 0; i < n; i++) {
        const left = i >= bpp ? buf[row + i - bpp]! : 0;
        const above = first ? 0 : buf[up + i]!;
        buf[row + i] = (buf[row + i]! + ((left + above) >> 1)) & 0xff;
      }
    } else if (type === 4) {
      for (let i = 0; i < n; i++) {
        const left = i >= bpp ? buf[row + i - bpp]! : 0;
        const above = first ? 0 : buf[up + i]!;
        const corner = first || i < bpp ? 0 : buf[up + i - bpp]!;
        buf[row + i] = (buf[row + i]! + paeth(left, above, corner)) & 0xff;
      }
    } else {
      return false;
    }
  }
  return true;
}

/** Decodes a PNG (signature already checked) to RGB planes; errors are one-line UserErrors naming `name`. */
export function decodePngPixels(bytes: Uint8Array, name: string): PngPixels {
  const { header: h, scanlines: buf, palette, transparency } = parsePng(bytes, name);
  const fail = (msg: string): never => {
    throw new UserError(`${name}: corrupt or unsupported PNG (${msg})`);
  };
  const channels = COLOR_TYPES[h.colorType]!.channels;
  const depth = h.bitDepth;
  const bitsPerPixel = channels * depth;
  const bpp = Math.max(1, bitsPerPixel >> 3);
  if (h.colorType === 3 && palette === null) fail('colour type 3 without a PLTE palette');
  const entries = palette ? Math.floor(palette.length / 3) : 0;
  if (h.colorType === 3 && transparency && transparency.length > entries) fail('more tRNS entries than palette entries');
  // A tRNS colour key (grey or RGB, compared with the raw samples) makes the pixel black.
  const key = transparency && (h.colorType === 0 || h.colorType === 2) ? readKey(transparency, h.colorType === 0 ? 1 : 3, fail) : null;
  const hw = h.width * h.height;
  const out = new Uint8Array(3 * hw);
  const palette3 = h.colorType === 3;
  const passes: readonly (readonly [number, number, number, number])[] = h.interlaced ? ADAM7 : [[0, 0, 1, 1]];
  let at = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.ceil((h.width - x0) / dx);
    const ph = Math.ceil((h.height - y0) / dy);
    if (pw <= 0 || ph <= 0) continue;
    const stride = scanlineBytes(pw, 1, bitsPerPixel);
    if (!unfilter(buf, at, ph, stride, bpp)) fail('unknown scanline filter type');
    const bad = convertPass(buf, at, stride, pw, ph, channels, depth, key, palette3 ? palette : null, entries, out, hw, y0 * h.width + x0, dy * h.width, dx);
    if (bad >= 0) fail(`index ${bad} not in palette`);
    at += ph * stride;
  }
  return { width: h.width, height: h.height, data: out, grey: (h.colorType & 2) === 0 };
}

/**
 * Writes the pixels of one (unfiltered) pass into the RGB planes `out` (`hw` bytes each): row py,
 * column px goes to `first + py * rowStep + px * dx`. Returns a palette index beyond the palette,
 * or -1.
 */
function convertPass(
  buf: Uint8Array, at: number, stride: number, pw: number, ph: number, channels: number, depth: number,
  key: number[] | null, palette: Uint8Array | null, entries: number, out: Uint8Array, hw: number, first: number, rowStep: number, dx: number,
): number {
  const max = 2 ** depth - 1;
  const rgb = channels >= 3;
  const rescale = depth !== 8 && palette === null;
  const k0 = key ? key[0]! : -1;
  const grey = key !== null && key.length === 1;
  const k1 = key && key.length === 3 ? key[1]! : -1;
  const k2 = key && key.length === 3 ? key[2]! : -1;
  for (let py = 0; py < ph; py++) {
    const row = at + py * stride + 1;
    let dst = first + py * rowStep;
    for (let px = 0, s = 0; px < pw; px++, s += channels, dst += dx) {
      let r = sampleAt(buf, row, s, depth, max);
      let g = rgb ? sampleAt(buf, row, s + 1, depth, max) : r;
      let b = rgb ? sampleAt(buf, row, s + 2, depth, max) : r;
      if (palette !== null) {
        if (r >= entries) return r;
        const i = 3 * r;
        r = palette[i]!;
        g = palette[i + 1]!;
        b = palette[i + 2]!;
      } else if (r === k0 && (grey || (g === k1 && b === k2))) {
        r = g = b = 0;
      } else if (rescale) {
        r = Math.floor((r * 255) / max + 0.5);
        g = rgb ? Math.floor((g * 255) / max + 0.5) : r;
        b = rgb ? Math.floor((b * 255) / max + 0.5) : r;
      }
      out[dst] = r;
      out[hw + dst] = g;
      out[2 * hw + dst] = b;
    }
  }
  return -1;
}

/** Sample `i` of the row whose data starts at `row` (after its filter byte). */
function sampleAt(buf: Uint8Array, row: number, i: number, depth: number, max: number): number {
  if (depth === 8) return buf[row + i]!;
  if (depth === 16) return (buf[row + 2 * i]! << 8) | buf[row + 2 * i + 1]!;
  const bit = i * depth;
  return (buf[row + (bit >> 3)]! >> (8 - depth - (bit & 7))) & max;
}

function readKey(t: Uint8Array, n: number, fail: (m: string) => never): number[] {
  if (t.length < 2 * n) fail(`tRNS has ${t.length} bytes, ${2 * n} expected`);
  return Array.from({ length: n }, (_, k) => (t[2 * k]! << 8) | t[2 * k + 1]!);
}

