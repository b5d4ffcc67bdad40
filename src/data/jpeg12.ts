// A sequential Huffman DCT JPEG decoder (ITU-T T.81 processes 1, 2 and 4: SOF0 and SOF1, 8- or
// 12-bit sample precision), written for DICOM's JPEG Extended with 12 bits stored (1.2.840.10008.1.2.4.51),
// for which no decoder is published on npm. No dependencies (the browser app runs the compiled file).
//
// Its output equals IJG libjpeg 6b's (what DCMTK's dcmdjpeg runs, built for 12 bits): the inverse
// DCT is the "islow" integer algorithm of jidctint.c (Loeffler-Ligtenberg-Moschytz, CONST_BITS 13,
// PASS1_BITS 2 at 8 bits and 1 at 12), the level shift and clamping go through IJG's range-limit
// table (masked index, so wild values wrap as libjpeg's do), and YCbCr -> RGB is jdcolor.c's
// fixed-point arithmetic. Coefficients are stored as 16-bit integers, as libjpeg's JCOEF.
// Supported: SOI, SOF0/SOF1, DHT, DQT (8- and 16-bit tables), DRI and RSTn, interleaved and
// non-interleaved scans, any sampling factors in the stream; the output is one plane per component
// at full size, so components with differing sampling factors (chroma subsampling) are refused.
// Progressive, lossless, hierarchical and arithmetic-coded frames are refused by name.
// Every failure is a JpegError with a one-line message; truncated data never loops.

export class JpegError extends Error {}

/** A decoded image: samples interleaved by pixel (0..2^precision - 1). */
export interface JpegImage {
  width: number;
  height: number;
  components: number;
  precision: 8 | 12;
  samples: Uint16Array;
  /** 'RGB' when three YCbCr components were converted, 'as stored' otherwise. */
  colour: 'RGB' | 'as stored';
}

const fail = (m: string): never => {
  throw new JpegError(m);
};

/** Zigzag position -> natural (row-major) position in the 8x8 block (T.81 figure A.6). */
const NATURAL = Uint8Array.from([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
  52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
]);

const SOF_NAMES: Readonly<Record<number, string>> = {
  0xc2: 'progressive DCT',
  0xc3: 'lossless',
  0xc5: 'differential sequential (hierarchical)',
  0xc6: 'differential progressive (hierarchical)',
  0xc7: 'differential lossless (hierarchical)',
  0xc9: 'arithmetic-coded sequential',
  0xca: 'arithmetic-coded progressive',
  0xcb: 'arithmetic-coded lossless',
  0xcd: 'arithmetic-coded differential sequential',
  0xce: 'arithmetic-coded differential progressive',
  0xcf: 'arithmetic-coded differential lossless',
};

/** A Huffman table in the form of T.81 F.2.2.3 (decoding by code length). */
interface Huffman {
  maxcode: Int32Array; // by length 1..16; -1 where no code has that length
  valptr: Int32Array;
  mincode: Int32Array;
  values: Uint8Array;
}

/** Builds the decoding tables from BITS (counts of codes by length) and HUFFVAL (T.81 C.2, F.2.2.3). */
function huffman(counts: Uint8Array, values: Uint8Array): Huffman {
  const maxcode = new Int32Array(18).fill(-1);
  const valptr = new Int32Array(17);
  const mincode = new Int32Array(17);
  let code = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    const n = counts[len - 1]!;
    if (n > 0) {
      valptr[len] = k;
      mincode[len] = code;
      code += n;
      k += n;
      maxcode[len] = code - 1;
      if (code > 2 ** len) fail('corrupt JPEG: a Huffman table has more codes than its lengths allow');
    }
    code <<= 1;
  }
  return { maxcode, valptr, mincode, values };
}

/** The entropy-coded segment's bits (T.81 F.2.2.5), with byte stuffing undone. */
class BitReader {
  private acc = 0;
  private left = 0;
  constructor(
    private readonly data: Uint8Array,
    public pos: number,
  ) {}

  bit(): number {
    if (this.left === 0) {
      const d = this.data;
      if (this.pos >= d.length) fail('truncated JPEG: the entropy-coded data ends early');
      const b = d[this.pos++]!;
      if (b === 0xff) {
        const next = d[this.pos];
        if (next === 0) this.pos++;
        else fail(`corrupt or truncated JPEG: marker 0xFF${(next ?? 0).toString(16).toUpperCase().padStart(2, '0')} inside the entropy-coded data`);
      }
      this.acc = b;
      this.left = 8;
    }
    this.left--;
    return (this.acc >> this.left) & 1;
  }

  /** The next `n` bits as an unsigned number (T.81 F.2.2.4 RECEIVE). */
  receive(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = (v << 1) | this.bit();
    return v;
  }

  /** One Huffman-coded value (T.81 F.2.2.3 DECODE). */
  decode(h: Huffman): number {
    let code = this.bit();
    for (let len = 1; len <= 16; len++) {
      if (code <= h.maxcode[len]!) return h.values[h.valptr[len]! + code - h.mincode[len]!]!;
      code = (code << 1) | this.bit();
    }
    return fail('corrupt JPEG: a Huffman code matches no table entry');
  }

  /** Drops the rest of the current byte (before a restart marker). */
  align(): void {
    this.left = 0;
  }
}

/** T.81 F.2.2.1 EXTEND: an s-bit magnitude category value -> signed. */
const extend = (v: number, s: number): number => (s === 0 ? 0 : v < 1 << (s - 1) ? v - (1 << s) + 1 : v);

/** A frame component and, once its scans are read, its coefficient blocks (bw x bh, 64 each, natural order). */
export interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  /** Blocks per line and per column as stored (whole MCUs). */
  bw: number;
  bh: number;
  /** Blocks that hold image samples. */
  usedW: number;
  usedH: number;
  coefs: Int16Array;
  scanned: boolean;
  // set per scan
  dc?: Huffman;
  ac?: Huffman;
  pred: number;
}

/** The frame header, with the MCU grid it implies. */
export interface Frame {
  precision: 8 | 12;
  width: number;
  height: number;
  hmax: number;
  vmax: number;
  mcusX: number;
  mcusY: number;
  components: Component[];
}

function u16(d: Uint8Array, at: number): number {
  if (at + 1 >= d.length) fail('truncated JPEG: a marker segment ends early');
  return (d[at]! << 8) | d[at + 1]!;
}

function readFrame(d: Uint8Array, at: number, len: number, check?: FrameCheck): Frame {
  if (len < 8) fail('corrupt JPEG: frame header too short');
  const p = d[at]!;
  if (p !== 8 && p !== 12) fail(`JPEG sample precision ${p} is not supported by the DCT decoder (8 and 12 are)`);
  const height = u16(d, at + 1);
  const width = u16(d, at + 3);
  const n = d[at + 5]!;
  if (height === 0) fail('JPEG with the height defined later (DNL marker) is not supported');
  if (width === 0) fail('corrupt JPEG: width 0');
  if (n < 1 || n > 4 || len < 6 + 3 * n) fail(`corrupt JPEG: frame header with ${n} components`);
  check?.({ width, height, components: n, precision: p });
  const comps: Component[] = [];
  for (let i = 0; i < n; i++) {
    const o = at + 6 + 3 * i;
    const h = d[o + 1]! >> 4;
    const v = d[o + 1]! & 15;
    if (h < 1 || h > 4 || v < 1 || v > 4) fail(`corrupt JPEG: sampling factors ${h}x${v}`);
    if (d[o + 2]! > 3) fail('corrupt JPEG: quantisation table selector above 3');
    comps.push({ id: d[o]!, h, v, tq: d[o + 2]!, bw: 0, bh: 0, usedW: 0, usedH: 0, coefs: new Int16Array(0), scanned: false, pred: 0 });
  }
  const hmax = Math.max(...comps.map((c) => c.h));
  const vmax = Math.max(...comps.map((c) => c.v));
  const mcusX = Math.ceil(width / (8 * hmax));
  const mcusY = Math.ceil(height / (8 * vmax));
  if (width * height * n > 2 ** 26) fail(`JPEG of ${width}x${height}x${n} samples is too large`);
  for (const c of comps) {
    c.bw = mcusX * c.h;
    c.bh = mcusY * c.v;
    c.usedW = Math.ceil(Math.ceil((width * c.h) / hmax) / 8);
    c.usedH = Math.ceil(Math.ceil((height * c.v) / vmax) / 8);
    c.coefs = new Int16Array(c.bw * c.bh * 64);
  }
  return { precision: p === 8 ? 8 : 12, width, height, hmax, vmax, mcusX, mcusY, components: comps };
}

/** Decodes one block's coefficients into `coefs` at `off` (T.81 F.2.2.1, F.2.2.2). */
function decodeBlock(bits: BitReader, c: Component, off: number): void {
  const s = bits.decode(c.dc!);
  if (s > 15) fail('corrupt JPEG: DC magnitude category above 15');
  c.pred += extend(bits.receive(s), s);
  const out = c.coefs;
  out[off] = c.pred; // wraps to 16 bits, as libjpeg's JCOEF
  for (let k = 1; k < 64; ) {
    const rs = bits.decode(c.ac!);
    const r = rs >> 4;
    const size = rs & 15;
    if (size === 0) {
      if (r !== 15) return; // end of block
      k += 16;
      continue;
    }
    k += r;
    if (k > 63) fail('corrupt JPEG: AC coefficients run past the block');
    out[off + NATURAL[k]!] = extend(bits.receive(size), size);
    k++;
  }
}

/** Reads a restart marker RSTn (n = the count mod 8), skipping fill bytes. */
function restart(d: Uint8Array, bits: BitReader, n: number): void {
  bits.align();
  let p = bits.pos;
  while (p < d.length && d[p] === 0xff && d[p + 1] === 0xff) p++;
  if (d[p] !== 0xff || d[p + 1] !== 0xd0 + (n & 7)) fail(`corrupt JPEG: restart marker RST${n & 7} missing`);
  bits.pos = p + 2;
}

function decodeScan(d: Uint8Array, pos: number, frame: Frame, scan: Component[], interval: number): number {
  const bits = new BitReader(d, pos);
  for (const c of scan) c.pred = 0;
  const single = scan.length === 1;
  const total = single ? scan[0]!.usedW * scan[0]!.usedH : frame.mcusX * frame.mcusY;
  for (let m = 0; m < total; m++) {
    if (interval > 0 && m > 0 && m % interval === 0) {
      restart(d, bits, m / interval - 1);
      for (const c of scan) c.pred = 0;
    }
    if (single) {
      const c = scan[0]!;
      const row = Math.floor(m / c.usedW);
      decodeBlock(bits, c, (row * c.bw + (m % c.usedW)) * 64);
    } else {
      const mx = m % frame.mcusX;
      const my = Math.floor(m / frame.mcusX);
      for (const c of scan)
        for (let v = 0; v < c.v; v++) for (let h = 0; h < c.h; h++) decodeBlock(bits, c, ((my * c.v + v) * c.bw + mx * c.h + h) * 64);
    }
  }
  for (const c of scan) c.scanned = true;
  return bits.pos;
}

const CONST_BITS = 13;
// jidctint.c's constants, FIX(x) = round(x * 2^CONST_BITS): 2446, 3196, 4433, 6270, 7373, 9633,
// 12299, 15137, 16069, 16819, 20995, 25172.
const [F0_298, F0_390, F0_541, F0_765, F0_899, F1_175, F1_501, F1_847, F1_961, F2_053, F2_562, F3_072] = [
  0.298631336, 0.390180644, 0.5411961, 0.765366865, 0.899976223, 1.175875602, 1.501321110, 1.847759065, 1.96157056, 2.053119869, 2.562915447, 3.072711026,
].map((x) => Math.floor(x * (1 << CONST_BITS) + 0.5)) as [number, number, number, number, number, number, number, number, number, number, number, number];

/**
 * One 1-D pass of jidctint.c's islow IDCT: the 8 values src[o + k*step] -> dst[d + k*dstep], each
 * DESCALEd by `shift` bits (libjpeg's rounding right shift of a 64-bit integer: exact in doubles,
 * whose integers are exact below 2^53) and then `& mask` (-1: libjpeg's cast to int; else the
 * range-limit table's index mask).
 */
function idctPass(src: Float64Array, o: number, step: number, dst: Float64Array, d: number, dstep: number, shift: number, mask: number): void {
  const v0 = src[o]!;
  const v1 = src[o + step]!;
  const v2 = src[o + 2 * step]!;
  const v3 = src[o + 3 * step]!;
  const v4 = src[o + 4 * step]!;
  const v5 = src[o + 5 * step]!;
  const v6 = src[o + 6 * step]!;
  const v7 = src[o + 7 * step]!;
  // even part
  let z1 = (v2 + v6) * F0_541;
  const tmp2e = z1 + v6 * -F1_847;
  const tmp3e = z1 + v2 * F0_765;
  const tmp0e = (v0 + v4) * (1 << CONST_BITS);
  const tmp1e = (v0 - v4) * (1 << CONST_BITS);
  const tmp10 = tmp0e + tmp3e;
  const tmp13 = tmp0e - tmp3e;
  const tmp11 = tmp1e + tmp2e;
  const tmp12 = tmp1e - tmp2e;
  // odd part
  z1 = v7 + v1;
  let z2 = v5 + v3;
  let z3 = v7 + v3;
  let z4 = v5 + v1;
  const z5 = (z3 + z4) * F1_175;
  z1 *= -F0_899;
  z2 *= -F2_562;
  z3 = z3 * -F1_961 + z5;
  z4 = z4 * -F0_390 + z5;
  const tmp0 = v7 * F0_298 + z1 + z3;
  const tmp1 = v5 * F2_053 + z2 + z4;
  const tmp2 = v3 * F3_072 + z2 + z3;
  const tmp3 = v1 * F1_501 + z1 + z4;
  const half = 2 ** (shift - 1);
  const inv = 2 ** -shift;
  dst[d] = Math.floor((tmp10 + tmp3 + half) * inv) & mask;
  dst[d + 7 * dstep] = Math.floor((tmp10 - tmp3 + half) * inv) & mask;
  dst[d + dstep] = Math.floor((tmp11 + tmp2 + half) * inv) & mask;
  dst[d + 6 * dstep] = Math.floor((tmp11 - tmp2 + half) * inv) & mask;
  dst[d + 2 * dstep] = Math.floor((tmp12 + tmp1 + half) * inv) & mask;
  dst[d + 5 * dstep] = Math.floor((tmp12 - tmp1 + half) * inv) & mask;
  dst[d + 3 * dstep] = Math.floor((tmp13 + tmp0 + half) * inv) & mask;
  dst[d + 4 * dstep] = Math.floor((tmp13 - tmp0 + half) * inv) & mask;
}

/**
 * libjpeg's post-IDCT range limit (jdmaster.c prepare_range_limit_table, as indexed by the IDCT):
 * index = value & (4 * 2^P - 1); centred values within range are shifted by 2^(P-1) and clamped to
 * 0..2^P - 1, and far-out values wrap as libjpeg's do.
 */
function rangeLimit(precision: number): Uint16Array {
  const size = 1 << precision;
  const max = size - 1;
  const centre = size >> 1;
  const t = new Uint16Array(4 * size);
  for (let x = 0; x < 4 * size; x++) {
    if (x < centre) t[x] = x + centre;
    else if (x < 2 * size) t[x] = max;
    else if (x < 4 * size - centre) t[x] = 0;
    else t[x] = x - (4 * size - centre);
  }
  return t;
}

/** Inverse DCT of every used block of `c` into a plane of bw*8 x bh*8 samples. */
function idctComponent(c: Component, q: Int32Array, precision: number, limit: Uint16Array): Uint16Array {
  const pass1 = precision === 8 ? 2 : 1;
  const mask = limit.length - 1;
  const stride = c.bw * 8;
  const plane = new Uint16Array(stride * c.bh * 8);
  const dq = new Float64Array(64); // dequantised coefficients
  const ws = new Float64Array(64); // libjpeg's int workspace (pass 1 casts to int)
  const out = new Float64Array(64); // range-limit indices
  const co = c.coefs;
  for (let by = 0; by < c.usedH; by++)
    for (let bx = 0; bx < c.usedW; bx++) {
      const off = (by * c.bw + bx) * 64;
      for (let k = 0; k < 64; k++) dq[k] = co[off + k]! * q[k]!;
      // pass 1: columns -> workspace, scaled up by 2^pass1; pass 2: rows -> samples
      for (let x = 0; x < 8; x++) idctPass(dq, x, 8, ws, x, 8, CONST_BITS - pass1, -1);
      for (let y = 0; y < 8; y++) idctPass(ws, 8 * y, 1, out, 8 * y, 1, CONST_BITS + pass1 + 3, mask);
      for (let y = 0; y < 8; y++) {
        const o = (by * 8 + y) * stride + bx * 8;
        for (let x = 0; x < 8; x++) plane[o + x] = limit[out[8 * y + x]!]!;
      }
    }
  return plane;
}

/** jdcolor.c's YCbCr -> RGB at `precision` bits, in place on interleaved samples. */
function ycbcrToRgb(s: Uint16Array, precision: number): void {
  const max = (1 << precision) - 1;
  const centre = 1 << (precision - 1);
  const SCALE = 16;
  const half = 1 << (SCALE - 1);
  const fix = (x: number): number => Math.floor(x * (1 << SCALE) + 0.5);
  const clamp = (x: number): number => (x < 0 ? 0 : x > max ? max : x);
  const shift = (x: number): number => Math.floor(x / (1 << SCALE));
  for (let i = 0; i < s.length; i += 3) {
    const y = s[i]!;
    const cb = s[i + 1]! - centre;
    const cr = s[i + 2]! - centre;
    s[i] = clamp(y + shift(fix(1.402) * cr + half));
    s[i + 1] = clamp(y + shift(-fix(0.34414) * cb + half - fix(0.71414) * cr));
    s[i + 2] = clamp(y + shift(fix(1.772) * cb + half));
  }
}

/**
 * Whether three components are YCbCr, as libjpeg guesses (jdapimin.c): a JFIF marker says so, an
 * Adobe marker's transform flag decides, else component ids 'R','G','B' mean RGB and anything else YCbCr.
 */
function isYcbcr(ids: number[], jfif: boolean, adobe: number | null): boolean {
  if (jfif) return true;
  if (adobe !== null) return adobe !== 0;
  return !(ids[0] === 82 && ids[1] === 71 && ids[2] === 66);
}

/** A stream's quantised DCT coefficients (entropy decoding done, nothing else). */
export interface JpegCoefficients {
  frame: Frame;
  /** Quantisation tables by id, natural order. */
  qTables: (Int32Array | undefined)[];
  jfif: boolean;
  adobe: number | null;
}

/** What the frame header says, for a caller to check before anything is allocated. */
export type FrameCheck = (f: { width: number; height: number; components: number; precision: number }) => void;

/**
 * Reads the markers and entropy-decodes every scan of a sequential Huffman DCT JPEG (SOF0 or SOF1).
 * `check` sees the frame header first (a wrapper that knows the size refuses a wrong one there).
 */
export function readJpegCoefficients(d: Uint8Array, check?: FrameCheck): JpegCoefficients {
  if (d.length < 4 || d[0] !== 0xff || d[1] !== 0xd8) fail('not a JPEG stream (no SOI marker)');
  const dcTables: (Huffman | undefined)[] = [];
  const acTables: (Huffman | undefined)[] = [];
  const qTables: (Int32Array | undefined)[] = [];
  let frame: Frame | null = null;
  let interval = 0;
  let jfif = false;
  let adobe: number | null = null;
  let pos = 2;
  let ended = false;
  while (!ended) {
    // the next marker, skipping fill bytes (and, as libjpeg, stray bytes before it)
    while (pos < d.length && d[pos] !== 0xff) pos++;
    while (pos < d.length && d[pos] === 0xff) pos++;
    if (pos >= d.length) break;
    const marker = d[pos++]!;
    if (marker === 0xd9) {
      ended = true;
      break;
    }
    if (marker >= 0xd0 && marker <= 0xd7) continue; // a stray RSTn has no segment
    if (marker === 0x01 || marker === 0xd8) fail(`corrupt JPEG: unexpected marker 0xFF${marker.toString(16).toUpperCase()}`);
    const len = u16(d, pos);
    if (len < 2 || pos + len > d.length) fail(`truncated JPEG: marker 0xFF${marker.toString(16).toUpperCase()} segment of ${len} bytes runs past the end`);
    const at = pos + 2;
    const end = pos + len;
    pos = end;
    if (marker === 0xc0 || marker === 0xc1) {
      if (frame) fail('corrupt JPEG: two frame headers');
      frame = readFrame(d, at, len - 2, check);
    } else if (SOF_NAMES[marker]) fail(`${SOF_NAMES[marker]} JPEG is not supported by the sequential decoder`);
    else if (marker === 0xc4) {
      for (let p = at; p < end; ) {
        if (p + 17 > end) fail('corrupt JPEG: Huffman table segment too short');
        const tc = d[p]! >> 4;
        const th = d[p]! & 15;
        if (tc > 1 || th > 3) fail('corrupt JPEG: Huffman table class or id out of range');
        const counts = d.subarray(p + 1, p + 17);
        const n = counts.reduce((s, x) => s + x, 0);
        if (p + 17 + n > end) fail('corrupt JPEG: Huffman table values run past their segment');
        (tc === 0 ? dcTables : acTables)[th] = huffman(counts, d.slice(p + 17, p + 17 + n));
        p += 17 + n;
      }
    } else if (marker === 0xdb) {
      for (let p = at; p < end; ) {
        const pq = d[p]! >> 4;
        const tq = d[p]! & 15;
        if (pq > 1 || tq > 3) fail('corrupt JPEG: quantisation table precision or id out of range');
        const size = pq ? 128 : 64;
        if (p + 1 + size > end) fail('corrupt JPEG: quantisation table segment too short');
        const q = new Int32Array(64);
        for (let k = 0; k < 64; k++) q[NATURAL[k]!] = pq ? u16(d, p + 1 + 2 * k) : d[p + 1 + k]!;
        qTables[tq] = q;
        p += 1 + size;
      }
    } else if (marker === 0xdd) {
      if (len !== 4) fail('corrupt JPEG: restart interval segment of the wrong length');
      interval = u16(d, at);
    } else if (marker === 0xda) {
      const fr: Frame = frame ?? fail('corrupt JPEG: scan before the frame header');
      const ns = d[at]!;
      if (ns < 1 || ns > 4 || len < 6 + 2 * ns) fail('corrupt JPEG: scan header with a bad component count');
      const scan: Component[] = [];
      for (let i = 0; i < ns; i++) {
        const id = d[at + 1 + 2 * i]!;
        const t = d[at + 2 + 2 * i]!;
        const c = fr.components.find((x) => x.id === id) ?? fail(`corrupt JPEG: scan names component ${id}, which the frame lacks`);
        c.dc = dcTables[t >> 4] ?? fail(`corrupt JPEG: DC Huffman table ${t >> 4} is not defined`);
        c.ac = acTables[t & 15] ?? fail(`corrupt JPEG: AC Huffman table ${t & 15} is not defined`);
        scan.push(c);
      }
      const ss = d[at + 1 + 2 * ns]!;
      const se = d[at + 2 + 2 * ns]!;
      if (ss !== 0 || se !== 63 || d[at + 3 + 2 * ns] !== 0) fail('corrupt JPEG: a sequential scan must cover coefficients 0..63 with no approximation');
      pos = decodeScan(d, end, fr, scan, interval);
    } else if (marker === 0xe0 && len >= 7 && String.fromCharCode(...d.subarray(at, at + 5)) === 'JFIF\0') jfif = true;
    else if (marker === 0xee && len >= 14 && String.fromCharCode(...d.subarray(at, at + 5)) === 'Adobe') adobe = d[at + 11]!;
    // other APPn, COM and unknown segments are skipped
  }
  if (!frame) return fail('truncated JPEG: no frame header');
  const missing = frame.components.find((c) => !c.scanned);
  if (missing) fail(`truncated JPEG: component ${missing.id} has no scan`);
  return { frame, qTables, jfif, adobe };
}

/** Decodes a sequential Huffman DCT JPEG (SOF0 or SOF1, 8- or 12-bit); `check` as readJpegCoefficients. */
export function decodeJpegSequential(d: Uint8Array, check?: FrameCheck): JpegImage {
  const { frame: f, qTables, jfif, adobe } = readJpegCoefficients(d, check);
  if (f.components.some((c) => c.h !== f.hmax || c.v !== f.vmax)) fail('JPEG with subsampled components is not supported by the sequential decoder');
  const limit = rangeLimit(f.precision);
  const planes = f.components.map((c) => idctComponent(c, qTables[c.tq] ?? fail(`corrupt JPEG: quantisation table ${c.tq} is not defined`), f.precision, limit));
  const n = planes.length;
  const samples = new Uint16Array(f.width * f.height * n);
  for (let k = 0; k < n; k++) {
    const plane = planes[k]!;
    const stride = f.components[k]!.bw * 8;
    for (let y = 0; y < f.height; y++) for (let x = 0; x < f.width; x++) samples[(y * f.width + x) * n + k] = plane[y * stride + x]!;
  }
  const colour = n === 3 && isYcbcr(f.components.map((c) => c.id), jfif, adobe);
  if (colour) ycbcrToRgb(samples, f.precision);
  return { width: f.width, height: f.height, components: n, precision: f.precision, samples, colour: colour ? 'RGB' : 'as stored' };
}
