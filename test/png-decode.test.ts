// lorkd's PNG decoder (src/data/png-decode.ts) against pngjs, the decoder it replaced, on every
// colour type and bit depth, palettes, tRNS colour keys, Adam7 interlacing and all five scanline
// filters; and its memory on a 1-pixel-wide image (pngjs needed ~110 bytes of heap per row).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync, crc32 as zcrc } from 'node:zlib';
import { pngChunk as chunk, pngFile } from './helpers/hostile.js';
import { PNG } from 'pngjs';
import { decodePngPixels } from '../src/data/png-decode.js';
import { ADAM7, scanlineBytes } from '../src/data/png-header.js';
import { lcg } from './helpers/random.js';

interface Spec {
  width: number;
  height: number;
  colorType: number;
  depth: number;
  interlaced: boolean;
  palette?: number;
  trns?: Uint8Array;
  seed: number;
}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/** A PNG with random samples; every row gets a random filter type (the filter applied for real). */
function encode(s: Spec): Buffer {
  const r = lcg(s.seed);
  const c = CHANNELS[s.colorType]!;
  const bits = c * s.depth;
  const bpp = Math.max(1, bits >> 3);
  const maxSample = s.colorType === 3 ? s.palette! - 1 : 2 ** s.depth - 1;
  const passes = s.interlaced ? ADAM7 : [[0, 0, 1, 1] as const];
  const parts: Buffer[] = [];
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.ceil((s.width - x0) / dx);
    const ph = Math.ceil((s.height - y0) / dy);
    if (pw <= 0 || ph <= 0) continue;
    const stride = scanlineBytes(pw, 1, bits) - 1;
    let prev = new Uint8Array(stride);
    for (let y = 0; y < ph; y++) {
      const raw = new Uint8Array(stride);
      for (let i = 0; i < pw * c; i++) {
        // Mostly small values so that the tRNS key and the palette are hit often.
        const v = Math.floor(r() * (r() < 0.3 ? 3 : maxSample + 1)) % (maxSample + 1);
        const bit = i * s.depth;
        if (s.depth === 16) {
          raw[2 * i] = v >> 8;
          raw[2 * i + 1] = v & 0xff;
        } else if (s.depth === 8) raw[i] = v;
        else raw[bit >> 3] |= v << (8 - s.depth - (bit & 7));
      }
      const type = Math.floor(r() * 5);
      const out = Buffer.alloc(stride + 1);
      out[0] = type;
      for (let i = 0; i < stride; i++) {
        const a = i >= bpp ? raw[i - bpp]! : 0;
        const b = prev[i]!;
        const cc = i >= bpp ? prev[i - bpp]! : 0;
        const p = a + b - cc;
        const pr = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - cc) ? a : Math.abs(p - b) <= Math.abs(p - cc) ? b : cc;
        const pred = [0, a, b, (a + b) >> 1, pr][type]!;
        out[i + 1] = (raw[i]! - pred) & 0xff;
      }
      parts.push(out);
      prev = raw;
    }
  }
  const before: Buffer[] = [];
  if (s.colorType === 3) before.push(chunk('PLTE', Uint8Array.from({ length: 3 * s.palette! }, () => Math.floor(r() * 256))));
  if (s.trns) before.push(chunk('tRNS', s.trns));
  return pngFile({ width: s.width, height: s.height, depth: s.depth, colorType: s.colorType, interlaced: s.interlaced }, deflateSync(Buffer.concat(parts)), { before });
}

/** pngjs's RGBA as RGB planes. */
function reference(bytes: Buffer): { data: number[]; grey: boolean } {
  const p = PNG.sync.read(bytes);
  const hw = p.width * p.height;
  const data = new Array<number>(3 * hw);
  for (let i = 0; i < hw; i++) for (let k = 0; k < 3; k++) data[k * hw + i] = p.data[4 * i + k]!;
  return { data, grey: !p.color };
}

test('every colour type, bit depth, filter, palette, tRNS key and interlacing decodes as pngjs does', () => {
  const depths: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
  let n = 0;
  for (const [ct, ds] of Object.entries(depths).map(([k, v]) => [Number(k), v] as const)) {
    for (const depth of ds) {
      for (const interlaced of [false, true]) {
        for (const [width, height] of [[1, 1], [7, 5], [13, 9], [1, 17], [19, 1]] as const) {
          const palette = ct === 3 ? Math.min(2 ** depth, 5) : undefined;
          const trns = ct === 0 ? Uint8Array.from([0, 1]) : ct === 2 ? Uint8Array.from([0, 1, 0, 0, 0, 2]) : ct === 3 ? Uint8Array.from([7, 9]) : undefined;
          for (const t of [undefined, trns]) {
            const spec: Spec = { width, height, colorType: ct, depth, interlaced, seed: ++n, ...(palette ? { palette } : {}), ...(t ? { trns: t } : {}) };
            const bytes = encode(spec);
            const mine = decodePngPixels(bytes, 'x.png');
            const ref = reference(bytes);
            const what = JSON.stringify({ ...spec, trns: t ? [...t] : null });
            assert.equal(mine.grey, ref.grey, what);
            assert.deepEqual(Array.from(mine.data), ref.data, what);
          }
        }
      }
    }
  }
  assert.ok(n > 200, `${n} images`);
});

test('a palette index beyond the palette and an unknown filter type are one-line errors', () => {
  const bad = encode({ width: 4, height: 4, colorType: 3, depth: 8, interlaced: false, palette: 2, seed: 3 });
  // Samples go up to palette - 1; a 1-entry PLTE makes index 1 invalid.
  const oneEntry = Buffer.from(bad);
  const at = oneEntry.indexOf('PLTE');
  oneEntry.writeUInt32BE(3, at - 4);
  const fixed = oneEntry.subarray(0, at + 4 + 3);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zcrc(fixed.subarray(at, at + 4 + 3)) >>> 0, 0);
  const rebuilt = Buffer.concat([fixed, crc, oneEntry.subarray(at + 4 + 6 + 4)]);
  assert.throws(() => decodePngPixels(rebuilt, 'pal.png'), /pal\.png: corrupt or unsupported PNG \(index 1 not in palette\)/);
  const f9 = pngFile({ width: 1, height: 1 }, deflateSync(Buffer.from([9, 1, 2, 3])));
  assert.throws(() => decodePngPixels(f9, 'f.png'), /f\.png: corrupt or unsupported PNG \(unknown scanline filter type\)/);
  const flipped = Buffer.from(f9);
  flipped[flipped.length - 20] ^= 1;
  assert.throws(() => decodePngPixels(flipped, 'crc.png'), /crc\.png: corrupt or unsupported PNG \(chunk \w+ at byte \d+ fails its CRC check\)/);
});

test('a 1 x 2,000,000 PNG decodes with a bounded heap (no per-row objects)', () => {
  const h = 2_000_000;
  const rows = Buffer.alloc(4 * h);
  for (let y = 0; y < h; y++) rows.set([1, 7, 1, 1], 4 * y); // Sub filter on one RGB pixel
  const bytes = pngFile({ width: 1, height: h }, deflateSync(rows, { level: 9 }));
  const heap0 = process.memoryUsage().heapUsed;
  let peak = heap0;
  const t0 = Date.now();
  const img = decodePngPixels(bytes, 'tall.png');
  peak = Math.max(peak, process.memoryUsage().heapUsed);
  assert.deepEqual([img.width, img.height, img.data[0], img.data[h], img.data[2 * h + h - 1]], [1, h, 7, 1, 1]);
  assert.ok(peak - heap0 < 32 * 2 ** 20, `heap grew by ${((peak - heap0) / 2 ** 20).toFixed(0)} MiB`);
  console.log(`# 1 x ${h}: ${Date.now() - t0} ms, heap +${((peak - heap0) / 2 ** 20).toFixed(1)} MiB`);
});

test('pixel data split over many IDAT chunks (here one byte each) decodes as one', () => {
  const spec: Spec = { width: 9, height: 7, colorType: 2, depth: 8, interlaced: false, seed: 77 };
  const whole = encode(spec);
  const ref = decodePngPixels(whole, 'one.png');
  // Re-chunk the IDAT stream byte by byte.
  const at = whole.indexOf('IDAT') - 4;
  const len = whole.readUInt32BE(at);
  const stream = whole.subarray(at + 8, at + 8 + len);
  const split = Buffer.concat([whole.subarray(0, at), ...Array.from(stream, (b) => chunk('IDAT', Uint8Array.of(b))), whole.subarray(at + 12 + len)]);
  assert.deepEqual(Array.from(decodePngPixels(split, 'many.png').data), Array.from(ref.data));
});
