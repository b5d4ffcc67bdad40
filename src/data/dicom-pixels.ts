// DICOM pixel math with no dependencies (no Node, no parser): stored pixel bytes -> values ->
// 8-bit display image, as DICOM PS3.3 defines it. The browser app imports the compiled file as it
// is; src/data/dicom.ts feeds it from dicom-parser in Node.
//   1. samples: bits allocated 8/16/32, little or big endian, the low `bitsStored` bits, signed
//      (two's complement, pixel representation 1) or unsigned; RLE Lossless frames decoded here
//   2. modality LUT: value = stored * RescaleSlope + RescaleIntercept
//   3. VOI: window centre/width (VOI LUT Function LINEAR, LINEAR_EXACT or SIGMOID) when present,
//      else the image's own min..max, onto 0..255
//   4. MONOCHROME1 (0 = white) is inverted, so every output has 0 = black

/** What the pixel math needs from a DICOM data set (PS3.3 C.7.6.3 Image Pixel module and friends). */
export interface DicomPixelInfo {
  rows: number;
  columns: number;
  /** 1 (grey) or 3 (RGB). */
  samplesPerPixel: number;
  /** 'MONOCHROME1', 'MONOCHROME2' or 'RGB' (others are refused). */
  photometric: string;
  bitsAllocated: number;
  bitsStored: number;
  /** Bit of the sample's most significant stored bit (default bitsStored - 1). */
  highBit: number;
  /** 0 unsigned, 1 signed (two's complement). */
  pixelRepresentation: number;
  /** 0: R G B R G B ... (by pixel), 1: all R, then all G, then all B (by plane). */
  planarConfiguration: number;
  /** Byte order of the native (uncompressed) pixel data. */
  littleEndian: boolean;
  numberOfFrames: number;
  rescaleSlope: number;
  rescaleIntercept: number;
  /** First window, when the file has one. */
  windowCenter?: number;
  windowWidth?: number;
  /** VOI LUT Function (0028,1056); default LINEAR. */
  voiLutFunction?: string;
}

/** A decoded frame for display: 8-bit, 0 = black; `channels` planes of rows x columns. */
export interface DisplayImage {
  rows: number;
  columns: number;
  /** 1 for grey, 3 for RGB. */
  channels: number;
  /** channels * rows * columns bytes, plane by plane (CHW). */
  data: Uint8Array;
}

/** An error in the pixel data or its description (the caller adds the file name). */
export class DicomPixelError extends Error {}

const fail = (msg: string): never => {
  throw new DicomPixelError(msg);
};

/** Checks that `info` describes something this module can decode. */
export function checkPixelInfo(info: DicomPixelInfo): void {
  const { rows, columns, samplesPerPixel: spp, bitsAllocated: ba, bitsStored: bs, highBit: hb } = info;
  if (!(Number.isInteger(rows) && rows > 0 && Number.isInteger(columns) && columns > 0)) fail(`image size ${rows}x${columns} is not valid`);
  if (![8, 16, 32].includes(ba)) fail(`${ba} bits allocated per sample is not supported (8, 16 or 32 are)`);
  if (!(Number.isInteger(bs) && bs >= 1 && bs <= ba)) fail(`bits stored ${bs} is not valid for ${ba} bits allocated`);
  if (!(Number.isInteger(hb) && hb >= bs - 1 && hb < ba)) fail(`high bit ${hb} is not valid for ${bs} bits stored in ${ba}`);
  if (info.pixelRepresentation !== 0 && info.pixelRepresentation !== 1) fail(`pixel representation ${info.pixelRepresentation} is not 0 or 1`);
  if (spp === 1) {
    if (info.photometric !== 'MONOCHROME1' && info.photometric !== 'MONOCHROME2') fail(`photometric interpretation ${info.photometric} with 1 sample per pixel is not supported`);
  } else if (spp === 3) {
    if (info.photometric !== 'RGB') fail(`photometric interpretation ${info.photometric} is not supported (MONOCHROME1, MONOCHROME2 and RGB are)`);
    if (ba !== 8) fail(`RGB with ${ba} bits per sample is not supported (8 is)`);
  } else {
    fail(`${spp} samples per pixel is not supported (1 or 3 are)`);
  }
  if (!(Number.isFinite(info.rescaleSlope) && Number.isFinite(info.rescaleIntercept))) fail('rescale slope/intercept are not numbers');
  if (info.rescaleSlope === 0) fail('rescale slope is 0');
}

/** Bytes of one frame of native (uncompressed) pixel data. */
export function frameBytes(info: DicomPixelInfo): number {
  return info.rows * info.columns * info.samplesPerPixel * (info.bitsAllocated / 8);
}

/**
 * Decodes one RLE Lossless frame (PS3.5 Annex G): a 64-byte header (segment count, then 15
 * offsets), then one PackBits segment per byte of each sample, most significant byte first.
 * Returns the frame as native little-endian pixel data, samples interleaved by pixel
 * (planar configuration 0).
 */
export function decodeRleFrame(frame: Uint8Array, info: DicomPixelInfo): Uint8Array {
  if (frame.length < 64) fail('RLE frame is shorter than its 64-byte header');
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const bytesPerSample = info.bitsAllocated / 8;
  const segments = dv.getUint32(0, true);
  const want = info.samplesPerPixel * bytesPerSample;
  if (segments !== want) fail(`RLE frame has ${segments} segments, ${want} expected`);
  const pixels = info.rows * info.columns;
  const out = new Uint8Array(pixels * want);
  for (let s = 0; s < segments; s++) {
    const start = dv.getUint32(4 + 4 * s, true);
    const end = s + 1 < segments ? dv.getUint32(8 + 4 * s, true) : frame.length;
    if (!(start >= 64 && start <= end && end <= frame.length)) fail(`RLE segment ${s} has offsets ${start}..${end} outside the frame`);
    // Segment s holds byte (bytesPerSample - 1 - s % bytesPerSample) of sample floor(s / bytesPerSample).
    const sample = Math.floor(s / bytesPerSample);
    const byte = bytesPerSample - 1 - (s % bytesPerSample);
    let o = 0;
    const put = (v: number): void => {
      if (o < pixels) out[o * want + sample * bytesPerSample + byte] = v;
      o++;
    };
    for (let i = start; i < end && o < pixels; ) {
      const n = frame[i++]!;
      if (n < 128) {
        // n + 1 literal bytes
        if (i + n + 1 > end) fail(`RLE segment ${s} is truncated`);
        for (let k = 0; k <= n; k++) put(frame[i + k]!);
        i += n + 1;
      } else if (n > 128) {
        // the next byte repeated 257 - n times
        if (i >= end) fail(`RLE segment ${s} is truncated`);
        const v = frame[i++]!;
        for (let k = 0; k < 257 - n; k++) put(v);
      }
      // n == 128: no operation
    }
    if (o < pixels) fail(`RLE segment ${s} decodes to ${o} of ${pixels} pixels`);
  }
  return out;
}

/**
 * Stored sample values of one native frame (`bytes` holds at least frameBytes(info)), masked to
 * bitsStored at highBit and sign-extended when signed. Samples stay in file order (by pixel, or
 * by plane with planar configuration 1).
 */
export function storedValues(bytes: Uint8Array, info: DicomPixelInfo): Int32Array | Float64Array {
  checkPixelInfo(info);
  const n = info.rows * info.columns * info.samplesPerPixel;
  const need = frameBytes(info);
  if (bytes.length < need) fail(`pixel data has ${bytes.length} bytes, ${need} expected for one ${info.rows}x${info.columns} frame`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = info.littleEndian;
  const ba = info.bitsAllocated;
  const shift = info.highBit - info.bitsStored + 1;
  const bits = info.bitsStored;
  const signed = info.pixelRepresentation === 1;
  // 32-bit values exceed int32 when unsigned: keep them in float64.
  const out = ba === 32 ? new Float64Array(n) : new Int32Array(n);
  const mod = 2 ** bits;
  for (let i = 0; i < n; i++) {
    const raw = ba === 8 ? bytes[i]! : ba === 16 ? dv.getUint16(2 * i, le) : dv.getUint32(4 * i, le);
    let v = Math.floor(raw / 2 ** shift) % mod;
    if (signed && v >= mod / 2) v -= mod;
    out[i] = v;
  }
  return out;
}

/** Modality LUT: stored * slope + intercept (PS3.3 C.11.1), as float64. */
export function modalityValues(stored: ArrayLike<number>, info: DicomPixelInfo): Float64Array {
  const out = new Float64Array(stored.length);
  for (let i = 0; i < stored.length; i++) out[i] = stored[i]! * info.rescaleSlope + info.rescaleIntercept;
  return out;
}

/**
 * VOI onto 0..255 (not yet rounded): with a window, PS3.3 C.11.2.1.2 (LINEAR, LINEAR_EXACT or
 * SIGMOID); without one (or with a width that the function cannot use), min..max of the values.
 * A constant image maps to 0.
 */
export function voiValues(values: ArrayLike<number>, info: Pick<DicomPixelInfo, 'windowCenter' | 'windowWidth' | 'voiLutFunction'>): Float64Array {
  const out = new Float64Array(values.length);
  const c = info.windowCenter;
  const w = info.windowWidth;
  const fn = (info.voiLutFunction ?? 'LINEAR').toUpperCase();
  if (c !== undefined && w !== undefined && Number.isFinite(c) && Number.isFinite(w)) {
    if (fn === 'SIGMOID' && w > 0) {
      for (let i = 0; i < values.length; i++) out[i] = 255 / (1 + Math.exp((-4 * (values[i]! - c)) / w));
      return out;
    }
    if (fn === 'LINEAR_EXACT' && w > 0) {
      const lo = c - w / 2;
      for (let i = 0; i < values.length; i++) out[i] = Math.min(255, Math.max(0, ((values[i]! - lo) / w) * 255));
      return out;
    }
    if (fn !== 'SIGMOID' && fn !== 'LINEAR_EXACT' && w >= 1) {
      const lo = c - 0.5 - (w - 1) / 2;
      const hi = c - 0.5 + (w - 1) / 2;
      for (let i = 0; i < values.length; i++) {
        const x = values[i]!;
        out[i] = x <= lo ? 0 : x > hi ? 255 : ((x - (c - 0.5)) / (w - 1) + 0.5) * 255;
      }
      return out;
    }
  }
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    min = Math.min(min, values[i]!);
    max = Math.max(max, values[i]!);
  }
  const range = max - min;
  for (let i = 0; i < values.length; i++) out[i] = range > 0 ? ((values[i]! - min) / range) * 255 : 0;
  return out;
}

const round8 = (v: number): number => Math.min(255, Math.max(0, Math.round(v)));

/**
 * One native frame -> the 8-bit display image: grey frames go through modality LUT, VOI and the
 * MONOCHROME1 inversion; RGB frames (8-bit) are only rearranged into planes.
 */
export function displayImage(bytes: Uint8Array, info: DicomPixelInfo): DisplayImage {
  const stored = storedValues(bytes, info);
  const hw = info.rows * info.columns;
  if (info.samplesPerPixel === 3) {
    const data = new Uint8Array(3 * hw);
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < hw; p++) data[c * hw + p] = stored[info.planarConfiguration === 1 ? c * hw + p : 3 * p + c]!;
    }
    return { rows: info.rows, columns: info.columns, channels: 3, data };
  }
  const voi = voiValues(modalityValues(stored, info), info);
  const invert = info.photometric === 'MONOCHROME1';
  const data = new Uint8Array(hw);
  for (let p = 0; p < hw; p++) data[p] = invert ? 255 - round8(voi[p]!) : round8(voi[p]!);
  return { rows: info.rows, columns: info.columns, channels: 1, data };
}

/** A display image as 3 planes (CHW): grey repeated into R, G and B, RGB as it is. */
export function rgbPlanes(d: DisplayImage): Uint8Array {
  const hw = d.rows * d.columns;
  const data = new Uint8Array(3 * hw);
  if (d.channels === 1) for (let c = 0; c < 3; c++) data.set(d.data, c * hw);
  else data.set(d.data);
  return data;
}

// ---------------------------------------------------------------- reading a file (parser passed in)
// The parser (dicom-parser's module) is an argument, so this file still imports nothing and the
// browser uses the same reading rules as Node (src/data/dicom.ts passes the npm package).

/** Transfer syntaxes whose pixel data lorkd reads. */
export const SUPPORTED_TRANSFER_SYNTAXES: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

/** Compressed transfer syntaxes, by name: decoded where a codec is passed (dicom-decoders.ts, in Node and the app), else refused by name. */
export const UNSUPPORTED_TRANSFER_SYNTAXES: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline (Process 1)',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (Process 2 & 4)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless, Non-Hierarchical (Process 14)',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless Image Compression',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Lossy (Near-Lossless) Image Compression',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000 Image Compression',
  '1.2.840.10008.1.2.4.201': 'High-Throughput JPEG 2000 Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.202': 'High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.203': 'High-Throughput JPEG 2000 Image Compression',
  '1.2.840.10008.1.2.4.100': 'MPEG2 Main Profile / Main Level',
  '1.2.840.10008.1.2.4.102': 'MPEG-4 AVC/H.264 High Profile / Level 4.1',
};

const IMPLICIT_LE = '1.2.840.10008.1.2';
const RLE = '1.2.840.10008.1.2.5';
const BIG_ENDIAN = '1.2.840.10008.1.2.2';

/** True when `bytes` has the DICOM Part 10 signature: "DICM" after the 128-byte preamble. */
export function isDicom(bytes: Uint8Array): boolean {
  return bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

/** The part of a dicom-parser DataSet used here. */
export interface DataSetLike {
  byteArray: Uint8Array;
  elements: Record<string, { length: number; dataOffset: number; encapsulatedPixelData?: boolean; fragments?: unknown[]; basicOffsetTable?: unknown[] } | undefined>;
  uint16(tag: string): number | undefined;
  string(tag: string): string | undefined;
  floatString(tag: string): number | undefined;
  intString(tag: string): number | undefined;
}

/** The part of the dicom-parser module used here. */
export interface DicomParserLike {
  parseDicom(bytes: Uint8Array, options?: { TransferSyntaxUID?: string; untilTag?: string; inflater?: (bytes: Uint8Array, position: number) => Uint8Array }): DataSetLike;
  readEncapsulatedPixelDataFromFragments(ds: DataSetLike, element: NonNullable<DataSetLike['elements'][string]>, start: number, count: number): Uint8Array;
  readEncapsulatedImageFrame?(ds: DataSetLike, element: NonNullable<DataSetLike['elements'][string]>, frame: number): Uint8Array;
}

/**
 * Decoders of compressed transfer syntaxes, by UID: one encapsulated frame -> native pixel bytes,
 * little endian, interleaved by pixel; `photometric` when decoding changed it (YBR -> RGB).
 */
export type DicomCodecs = Readonly<Record<string, (frame: Uint8Array, info: DicomPixelInfo) => { bytes: Uint8Array; photometric?: string }>>;

export interface ReadDicomOptions {
  /** Raw-deflate decompression (bytes -> bytes) for deflated files; Node's dicom-parser uses node:zlib without it. */
  inflateRaw?: (bytes: Uint8Array) => Uint8Array;
  /** A dicom-parser inflater (file bytes, data set offset) -> full bytes; preferred to inflateRaw (Node passes a bounded one). */
  inflater?: (bytes: Uint8Array, position: number) => Uint8Array;
  /** Called with the image size before any pixel is decoded (to enforce a limit by throwing). */
  checkSize?: (rows: number, columns: number) => void;
  /** Decoders of compressed transfer syntaxes (dicom-decoders.ts: Node passes dicom-codecs.ts, the app site/codecs.js). */
  codecs?: DicomCodecs;
}

/** One frame of a DICOM file, native (RLE or compressed frames decoded), with its pixel description. */
export interface DicomFrame {
  info: DicomPixelInfo;
  /** Native pixel bytes of the frame (as `info` describes them). */
  bytes: Uint8Array;
  transferSyntax: string;
}

const messageOf = (e: unknown): string =>
  (e instanceof Error ? e.message : typeof e === 'string' ? e : String((e as { exception?: string })?.exception ?? e)).split('\n')[0]!;

function pixelInfo(ds: DataSetLike, littleEndian: boolean): DicomPixelInfo {
  const us = (tag: string, what: string): number => ds.uint16(tag) ?? fail(`the file has no ${what} (${tag.slice(1, 5)},${tag.slice(5)})`);
  const bitsAllocated = us('x00280100', 'Bits Allocated');
  const bitsStored = ds.uint16('x00280101') ?? bitsAllocated;
  const center = ds.floatString('x00281050');
  const width = ds.floatString('x00281051');
  const fn = ds.string('x00281056');
  return {
    rows: us('x00280010', 'Rows'),
    columns: us('x00280011', 'Columns'),
    samplesPerPixel: ds.uint16('x00280002') ?? 1,
    photometric: (ds.string('x00280004') ?? 'MONOCHROME2').trim().toUpperCase(),
    bitsAllocated,
    bitsStored,
    highBit: ds.uint16('x00280102') ?? bitsStored - 1,
    pixelRepresentation: ds.uint16('x00280103') ?? 0,
    planarConfiguration: ds.uint16('x00280006') ?? 0,
    littleEndian,
    numberOfFrames: ds.intString('x00280008') ?? 1,
    rescaleSlope: ds.floatString('x00281053') ?? 1,
    rescaleIntercept: ds.floatString('x00281052') ?? 0,
    ...(center !== undefined && width !== undefined ? { windowCenter: center, windowWidth: width } : {}),
    ...(fn ? { voiLutFunction: fn.trim() } : {}),
  };
}

/** Frame k's bytes inside encapsulated pixel data (PS3.5 A.4): by the basic offset table, one fragment per frame, or all fragments for a single frame. */
function encapsulatedFrame(parser: DicomParserLike, ds: DataSetLike, el: PixelDataElement, k: number, count: number, what: string): Uint8Array {
  if (!el.encapsulatedPixelData) fail(`${what} pixel data is not encapsulated`);
  const fragments = el.fragments?.length ?? 0;
  if (!fragments) fail(`${what} pixel data has no fragments`);
  if (el.basicOffsetTable?.length && parser.readEncapsulatedImageFrame) return parser.readEncapsulatedImageFrame(ds, el, k);
  if (fragments === count) return parser.readEncapsulatedPixelDataFromFragments(ds, el, k, 1);
  if (count === 1) return parser.readEncapsulatedPixelDataFromFragments(ds, el, 0, fragments);
  return fail(`${what} pixel data has ${fragments} fragments for ${count} frames and no basic offset table`);
}

type PixelDataElement = NonNullable<DataSetLike['elements'][string]>;

/** Frame k's native pixel bytes (RLE and compressed frames decoded: the info then describes little-endian, by-pixel data). */
function frameAt(parser: DicomParserLike, ds: DataSetLike, ts: string, info: DicomPixelInfo, k: number, codecs: DicomCodecs | undefined): { bytes: Uint8Array; info: DicomPixelInfo } {
  const el = ds.elements.x7fe00010 ?? fail('the file has no Pixel Data (7FE0,0010)');
  const count = Math.max(1, info.numberOfFrames);
  if (ts === RLE) {
    const frame = encapsulatedFrame(parser, ds, el, k, count, 'RLE Lossless');
    return { bytes: decodeRleFrame(frame, info), info: { ...info, littleEndian: true, planarConfiguration: 0 } };
  }
  const codec = codecs?.[ts];
  if (codec) {
    const frame = encapsulatedFrame(parser, ds, el, k, count, SUPPORTED_TRANSFER_SYNTAXES[ts] ?? ts);
    const out = codec(frame, info);
    return { bytes: out.bytes, info: { ...info, littleEndian: true, planarConfiguration: 0, ...(out.photometric ? { photometric: out.photometric } : {}) } };
  }
  if (el.encapsulatedPixelData) fail('native transfer syntax with encapsulated pixel data');
  const need = frameBytes(info);
  const start = el.dataOffset + k * need;
  if (start + need > ds.byteArray.length || el.length < (k + 1) * need) {
    fail(`pixel data is truncated (${Math.max(0, Math.min(el.length - k * need, ds.byteArray.length - start))} of ${need} bytes of frame ${k + 1} of ${count})`);
  }
  return { bytes: ds.byteArray.subarray(start, start + need), info };
}

/** A DICOM file's frames: the description they share, and each frame decoded when asked. */
export interface DicomFrames {
  count: number;
  transferSyntax: string;
  frame(k: number): DicomFrame;
}

/**
 * Parses DICOM bytes with `parser` (dicom-parser) and returns its frames (each decoded to native
 * pixel bytes when asked) and their description. Every problem is a one-line DicomPixelError: not DICOM, truncated, no
 * pixel data, an unsupported transfer syntax (named, with its UID) or pixel format. Files
 * without the Part 10 header are read as a bare implicit VR little endian data set.
 */
export function readDicomFramesWith(parser: DicomParserLike, bytes: Uint8Array, o: ReadDicomOptions = {}): DicomFrames {
  let ds: DataSetLike;
  try {
    const inflateRaw = o.inflateRaw;
    const inflater = o.inflater ?? (inflateRaw
      ? (b: Uint8Array, position: number): Uint8Array => {
          const inflated = inflateRaw(b.subarray(position));
          const full = new Uint8Array(position + inflated.length);
          full.set(b.subarray(0, position), 0);
          full.set(inflated, position);
          return full;
        }
      : undefined);
    // Parsing stops at the Pixel Data element (what follows it is never read), except for RLE,
    // whose fragments are read from the element itself.
    const parse = (until: boolean): DataSetLike =>
      parser.parseDicom(bytes, { ...(isDicom(bytes) ? (inflater ? { inflater } : {}) : { TransferSyntaxUID: IMPLICIT_LE }), ...(until ? { untilTag: 'x7fe00010' } : {}) });
    ds = parse(true);
    const tsOf = (): string => (ds.string('x00020010') ?? '').replace(/\0/g, '').trim();
    if (tsOf() === RLE || o.codecs?.[tsOf()]) ds = parse(false);
  } catch (e) {
    // The inflater's own refusals (a bound, a limit) pass through as they are.
    if (e instanceof DicomPixelError || (e instanceof Error && e.name === 'UserError')) throw e;
    const msg = messageOf(e).replace(/^dicomParser[.:][A-Za-z]+: /, '');
    return fail(/buffer overrun/.test(msg) ? 'truncated or corrupt DICOM file (the data ends inside an element)' : `not a readable DICOM file (${msg})`);
  }
  const ts = (ds.string('x00020010') ?? IMPLICIT_LE).replace(/\0/g, '').trim();
  if (!(ts in SUPPORTED_TRANSFER_SYNTAXES) && !o.codecs?.[ts]) {
    const readable = [...Object.values(SUPPORTED_TRANSFER_SYNTAXES), ...Object.keys(o.codecs ?? {}).map((u) => UNSUPPORTED_TRANSFER_SYNTAXES[u] ?? u)];
    fail(`unsupported transfer syntax ${UNSUPPORTED_TRANSFER_SYNTAXES[ts] ?? 'unknown'} (${ts}); lorkd reads ${readable.join(', ')}`);
  }
  const guard = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      return e instanceof DicomPixelError ? fail(e.message) : fail(`corrupt DICOM pixel data (${messageOf(e)})`);
    }
  };
  const described = guard(() => pixelInfo(ds, ts !== BIG_ENDIAN));
  o.checkSize?.(described.rows, described.columns);
  const count = Math.max(1, described.numberOfFrames);
  return {
    count,
    transferSyntax: ts,
    frame: (k) =>
      guard(() => {
        if (!(Number.isInteger(k) && k >= 0 && k < count)) fail(`frame ${k} does not exist (the file has ${count})`);
        const { bytes: frame, info } = frameAt(parser, ds, ts, described, k, o.codecs);
        checkPixelInfo(info);
        return { info, bytes: frame, transferSyntax: ts };
      }),
  };
}

/** The first frame of DICOM bytes (see readDicomFramesWith). */
export function readDicomFrameWith(parser: DicomParserLike, bytes: Uint8Array, o: ReadDicomOptions = {}): DicomFrame {
  return readDicomFramesWith(parser, bytes, o).frame(0);
}
