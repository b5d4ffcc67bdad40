// Test-only: re-encodes a sequential JPEG's coefficients with restart markers (DRI + RSTn), because
// no encoder installed here writes a 12-bit JPEG with a restart interval (DCMTK's dcmcjpeg has no
// option for it). The coefficients come from lorkd's reader; the new stream is then decoded by
// DCMTK's dcmdjpeg as the reference, so a mistake here shows as a mismatch, not as a pass.
// Huffman tables are flat: every symbol the coefficients use gets a code of one length (the
// shortest that avoids the all-ones code), which T.81 annex C allows; the file is a little larger.
import { readJpegCoefficients } from '../../src/data/jpeg12.js';

class BitWriter {
  readonly bytes: number[] = [];
  private acc = 0;
  private n = 0;

  put(value: number, length: number): void {
    for (let i = length - 1; i >= 0; i--) {
      this.acc = (this.acc << 1) | ((value >> i) & 1);
      if (++this.n === 8) this.flushByte();
    }
  }

  /** Pads the last byte with 1-bits (T.81 F.1.2.3). */
  pad(): void {
    while (this.n !== 0) this.put(1, 1);
  }

  private flushByte(): void {
    this.bytes.push(this.acc);
    if (this.acc === 0xff) this.bytes.push(0); // byte stuffing
    this.acc = 0;
    this.n = 0;
  }
}

const segment = (marker: number, body: number[]): number[] => [0xff, marker, (body.length + 2) >> 8, (body.length + 2) & 0xff, ...body];
const ZIGZAG_NATURAL = [
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
  52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/** Magnitude category and the bits that follow it (T.81 F.1.2.1). */
function category(v: number): [number, number] {
  const s = v === 0 ? 0 : 32 - Math.clz32(Math.abs(v));
  return [s, v < 0 ? (v - 1) & ((1 << s) - 1) : v];
}

/**
 * `jpeg` with the same frame and quantisation tables and the same coefficients, in one interleaved
 * scan of all components or (`interleaved` false) one scan per component, with a restart marker
 * every `interval` MCUs.
 */
export function withRestarts(jpeg: Uint8Array, interval: number, interleaved = true): Uint8Array {
  const { frame, qTables } = readJpegCoefficients(jpeg);
  const comps = frame.components;
  const out: number[] = [0xff, 0xd8];
  qTables.forEach((q, id) => {
    if (!q) return;
    out.push(...segment(0xdb, [0x10 | id, ...ZIGZAG_NATURAL.flatMap((k) => [q[k]! >> 8, q[k]! & 0xff])]));
  });
  out.push(...segment(0xc1, [frame.precision, frame.height >> 8, frame.height & 0xff, frame.width >> 8, frame.width & 0xff, comps.length, ...comps.flatMap((c) => [c.id, (c.h << 4) | c.v, c.tq])]));
  // the symbols of every block, in scan order: [is AC, symbol, extra bits, extra length]
  const symbols: [number, number, number, number][] = [];
  const pred = comps.map(() => 0);
  const block = (ci: number, bx: number, by: number): void => {
    const c = comps[ci]!;
    const off = (by * c.bw + bx) * 64;
    const [s, bits] = category(c.coefs[off]! - pred[ci]!);
    pred[ci] = c.coefs[off]!;
    symbols.push([0, s, bits, s]);
    let run = 0;
    for (let k = 1; k < 64; k++) {
      const v = c.coefs[off + ZIGZAG_NATURAL[k]!]!;
      if (v === 0) {
        run++;
        continue;
      }
      for (; run > 15; run -= 16) symbols.push([1, 0xf0, 0, 0]);
      const [size, b] = category(v);
      symbols.push([1, (run << 4) | size, b, size]);
      run = 0;
    }
    if (run > 0) symbols.push([1, 0x00, 0, 0]);
  };
  const RESTART = -1;
  const SCAN = -2; // a new scan of the components listed by index in `scans`
  const scans = interleaved ? [comps.map((_, i) => i)] : comps.map((_, i) => [i]);
  for (const [si, scan] of scans.entries()) {
    symbols.push([SCAN, si, 0, 0]);
    pred.fill(0);
    const one = comps[scan[0]!]!;
    const total = scan.length === 1 ? one.usedW * one.usedH : frame.mcusX * frame.mcusY;
    for (let m = 0; m < total; m++) {
      if (m > 0 && m % interval === 0) {
        symbols.push([RESTART, m / interval - 1, 0, 0]);
        pred.fill(0);
      }
      if (scan.length === 1) block(scan[0]!, m % one.usedW, Math.floor(m / one.usedW));
      else
        for (const ci of scan) {
          const c = comps[ci]!;
          for (let v = 0; v < c.v; v++) for (let h = 0; h < c.h; h++) block(ci, (m % frame.mcusX) * c.h + h, Math.floor(m / frame.mcusX) * c.v + v);
        }
    }
  }
  // one table per class: the used symbols, sorted, all of one code length
  const tables = [0, 1].map((cls) => {
    const used = [...new Set(symbols.filter((x) => x[0] === cls).map((x) => x[1]))].sort((p, q) => p - q);
    const length = Math.max(1, Math.ceil(Math.log2(used.length + 1)));
    const counts = Array<number>(16).fill(0);
    counts[length - 1] = used.length;
    out.push(...segment(0xc4, [cls << 4, ...counts, ...used]));
    return { length, code: new Map(used.map((v, i) => [v, i])) };
  });
  out.push(...segment(0xdd, [interval >> 8, interval & 0xff]));
  let w: BitWriter | null = null;
  const endScan = (): void => {
    if (!w) return;
    w.pad();
    for (const b of w.bytes) out.push(b);
  };
  for (const [cls, sym, bits, len] of symbols) {
    if (cls === SCAN) {
      endScan();
      const scan = scans[sym]!;
      out.push(...segment(0xda, [scan.length, ...scan.flatMap((ci) => [comps[ci]!.id, 0x00]), 0, 63, 0]));
      w = new BitWriter();
      continue;
    }
    if (!w) throw new Error('a symbol before the first scan');
    if (cls === RESTART) {
      w.pad();
      w.bytes.push(0xff, 0xd0 + (sym & 7));
      continue;
    }
    const t = tables[cls]!;
    w.put(t.code.get(sym)!, t.length);
    w.put(bits, len);
  }
  endScan();
  return Uint8Array.from([...out, 0xff, 0xd9]);
}
