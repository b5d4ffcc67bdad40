// The dependency-free DICOM pixel math against values computed here from the standard's
// definitions: stored-value masking and sign extension (bits stored < allocated, high bit),
// byte order, the modality LUT, VOI windows (LINEAR, LINEAR_EXACT, SIGMOID) and min-max, the
// MONOCHROME1 inversion, RGB planar configurations, and RLE decoding of frames encoded by a
// PackBits encoder written in this test; malformed descriptions and frames are DicomPixelErrors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type DicomPixelInfo, DicomPixelError, decodeRleFrame, displayImage, modalityValues, storedValues, voiValues,
} from '../src/data/dicom-pixels.js';
import { lcg } from './helpers/random.js';

const base = (o: Partial<DicomPixelInfo> = {}): DicomPixelInfo => ({
  rows: 2, columns: 3, samplesPerPixel: 1, photometric: 'MONOCHROME2', bitsAllocated: 16, bitsStored: 16, highBit: 15,
  pixelRepresentation: 0, planarConfiguration: 0, littleEndian: true, numberOfFrames: 1, rescaleSlope: 1, rescaleIntercept: 0, ...o,
});

/** 16-bit words -> bytes in the given order. */
function words(ws: number[], le: boolean): Uint8Array {
  const out = new Uint8Array(2 * ws.length);
  const dv = new DataView(out.buffer);
  ws.forEach((w, i) => dv.setUint16(2 * i, w, le));
  return out;
}

test('stored values: 12 of 16 bits at high bit 11, signed and unsigned, both byte orders, with junk in the top bits', () => {
  // Stored 12-bit values; the top 4 bits of each word carry junk (an overlay) that must be masked.
  const vals = [0, 1, 2047, 2048, 4095, 1234];
  const junk = [0xa, 0x5, 0xf, 0x1, 0x3, 0xc];
  const ws = vals.map((v, i) => (junk[i]! << 12) | v);
  for (const le of [true, false]) {
    const u = storedValues(words(ws, le), base({ bitsStored: 12, highBit: 11, littleEndian: le }));
    assert.deepEqual(Array.from(u), vals);
    const s = storedValues(words(ws, le), base({ bitsStored: 12, highBit: 11, pixelRepresentation: 1, littleEndian: le }));
    // two's complement in 12 bits: v >= 2048 means v - 4096
    assert.deepEqual(Array.from(s), vals.map((v) => (v >= 2048 ? v - 4096 : v)));
  }
  // High bit 15 with 12 bits stored: the value sits in the top 12 bits.
  const hi = storedValues(words(vals.map((v) => (v << 4) | 0xf), true), base({ bitsStored: 12, highBit: 15 }));
  assert.deepEqual(Array.from(hi), vals);
  // 8-bit signed, and 32-bit unsigned beyond int32.
  assert.deepEqual(Array.from(storedValues(Uint8Array.from([0, 127, 128, 255, 1, 200]), base({ bitsAllocated: 8, bitsStored: 8, highBit: 7, pixelRepresentation: 1 }))), [0, 127, -128, -1, 1, -56]);
  const big = new Uint8Array(24);
  new DataView(big.buffer).setUint32(0, 4_000_000_000, true);
  assert.equal(storedValues(big, base({ bitsAllocated: 32, bitsStored: 32, highBit: 31 }))[0], 4_000_000_000);
});

test('modality LUT and VOI: slope/intercept, LINEAR window (PS3.3 C.11.2.1.2 at its break points), LINEAR_EXACT, SIGMOID, min-max', () => {
  const m = modalityValues([0, 10, -3], base({ rescaleSlope: 2.5, rescaleIntercept: -1024 }));
  assert.deepEqual(Array.from(m), [-1024, -999, -1031.5]);
  const c = 40;
  const w = 400;
  const lo = c - 0.5 - (w - 1) / 2;
  const hi = c - 0.5 + (w - 1) / 2;
  const x = [lo - 10, lo, c - 0.5, hi, hi + 1e-9, hi + 100, lo + (hi - lo) / 4];
  const y = voiValues(x, { windowCenter: c, windowWidth: w });
  const linear = (v: number) => ((v - (c - 0.5)) / (w - 1) + 0.5) * 255;
  assert.deepEqual(Array.from(y).map((v) => +v.toFixed(9)), [0, 0, 127.5, 255, 255, 255, +linear(lo + (hi - lo) / 4).toFixed(9)]);
  const exact = voiValues([c - w / 2, c, c + w / 2, c + w], { windowCenter: c, windowWidth: w, voiLutFunction: 'LINEAR_EXACT' });
  assert.deepEqual(Array.from(exact), [0, 127.5, 255, 255]);
  const sig = voiValues([c, c + w / 4], { windowCenter: c, windowWidth: w, voiLutFunction: 'SIGMOID' });
  assert.ok(Math.abs(sig[0]! - 127.5) < 1e-12 && Math.abs(sig[1]! - 255 / (1 + Math.exp(-1))) < 1e-9);
  assert.deepEqual(Array.from(voiValues([5, 15, 10], {})), [0, 255, 127.5]);
  assert.deepEqual(Array.from(voiValues([7, 7], {})), [0, 0], 'a constant image is black');
});

test('display image: rounding, MONOCHROME1 = 255 - MONOCHROME2, RGB by pixel and by plane', () => {
  const ws = [100, 200, 300, 400, 500, 600];
  const info = base({ windowCenter: 350, windowWidth: 501 });
  const mono2 = displayImage(words(ws, true), info);
  const expect = ws.map((v) => Math.round(Math.min(255, Math.max(0, ((v - 349.5) / 500 + 0.5) * 255))));
  assert.deepEqual(Array.from(mono2.data), expect);
  const mono1 = displayImage(words(ws, true), { ...info, photometric: 'MONOCHROME1' });
  assert.deepEqual(Array.from(mono1.data), expect.map((v) => 255 - v));
  const rgbInfo = base({ rows: 1, columns: 2, samplesPerPixel: 3, photometric: 'RGB', bitsAllocated: 8, bitsStored: 8, highBit: 7 });
  assert.deepEqual(Array.from(displayImage(Uint8Array.from([1, 2, 3, 4, 5, 6]), rgbInfo).data), [1, 4, 2, 5, 3, 6]);
  assert.deepEqual(Array.from(displayImage(Uint8Array.from([1, 4, 2, 5, 3, 6]), { ...rgbInfo, planarConfiguration: 1 }).data), [1, 4, 2, 5, 3, 6]);
});

/** PackBits as PS3.5 G.3.1 describes it: runs of 2..128 equal bytes as (257 - n, byte), else literals of up to 128. */
function packBits(src: Uint8Array): number[] {
  const out: number[] = [];
  let i = 0;
  while (i < src.length) {
    let run = 1;
    while (i + run < src.length && run < 128 && src[i + run] === src[i]) run++;
    if (run >= 2) {
      out.push(257 - run, src[i]!);
      i += run;
      continue;
    }
    let j = i;
    while (j < src.length && j - i < 128 && !(j + 1 < src.length && src[j + 1] === src[j])) j++;
    if (j === i) j++;
    out.push(j - i - 1, ...src.subarray(i, j));
    i = j;
  }
  if (out.length % 2) out.push(128); // segments are padded to even length (128 = no-op)
  return out;
}

/** An RLE frame: header, then one segment per byte of each sample, most significant byte first. */
function rleFrame(samples: number[][], bytesPerSample: number): Uint8Array {
  const segs: number[][] = [];
  for (const plane of samples) {
    for (let b = bytesPerSample - 1; b >= 0; b--) segs.push(packBits(Uint8Array.from(plane, (v) => (v >> (8 * b)) & 255)));
  }
  const header = new Uint8Array(64);
  const dv = new DataView(header.buffer);
  dv.setUint32(0, segs.length, true);
  let off = 64;
  segs.forEach((s, k) => {
    dv.setUint32(4 + 4 * k, off, true);
    off += s.length;
  });
  return Uint8Array.from([...header, ...segs.flat()]);
}

test('RLE: frames from a PackBits encoder decode to the native samples (16-bit grey, 8-bit RGB); truncation is an error', () => {
  const r = lcg(5);
  const rows = 7;
  const columns = 19;
  const n = rows * columns;
  // Runs and noise, so both packet kinds occur.
  const grey = Array.from({ length: n }, (_, i) => (i % 23 < 9 ? 1000 + Math.floor(i / 23) : Math.floor(r() * 65536)));
  const info = base({ rows, columns });
  const dec = decodeRleFrame(rleFrame([grey], 2), info);
  assert.deepEqual(Array.from(storedValues(dec, info)), grey);
  const planes = [0, 1, 2].map((c) => Array.from({ length: n }, (_, i) => (i < 40 ? 10 * c : Math.floor(r() * 256))));
  const rgb = base({ rows, columns, samplesPerPixel: 3, photometric: 'RGB', bitsAllocated: 8, bitsStored: 8, highBit: 7 });
  const img = displayImage(decodeRleFrame(rleFrame(planes, 1), rgb), rgb);
  assert.deepEqual(Array.from(img.data), planes.flat());
  const frame = rleFrame([grey], 2);
  assert.throws(() => decodeRleFrame(frame.subarray(0, frame.length - 50), info), DicomPixelError);
  assert.throws(() => decodeRleFrame(frame, base({ rows, columns, samplesPerPixel: 3, photometric: 'RGB', bitsAllocated: 8, bitsStored: 8, highBit: 7 })), /segments/);
});

test('descriptions that cannot be decoded are DicomPixelErrors naming the problem', () => {
  const bytes = new Uint8Array(64);
  for (const [o, re] of [
    [{ bitsAllocated: 1, bitsStored: 1, highBit: 0 }, /1 bits allocated/],
    [{ bitsStored: 17 }, /bits stored 17/],
    [{ samplesPerPixel: 3, photometric: 'YBR_FULL', bitsAllocated: 8, bitsStored: 8, highBit: 7 }, /YBR_FULL/],
    [{ photometric: 'PALETTE COLOR' }, /PALETTE COLOR/],
    [{ rescaleSlope: 0 }, /slope is 0/],
    [{ rows: 100 }, /pixel data has 64 bytes, 600 expected/],
  ] as [Partial<DicomPixelInfo>, RegExp][]) {
    assert.throws(() => storedValues(bytes, base(o)), (e: Error) => e instanceof DicomPixelError && re.test(e.message));
  }
});
