// DICOM in the page, by the same rules as lorkd's Node reader (src/data/dicom.ts): dicom-parser
// reads the data set, the first frame's native pixel bytes are taken (RLE Lossless decoded) and
// lorkd's own pixel module (src/data/dicom-pixels.ts, compiled and copied into the site) applies
// the modality LUT, the window (else min-max) and the MONOCHROME1 inversion. Deflated files are
// inflated with fflate. JPEG-family transfer syntaxes are refused with their name, as in lorkd.
// Plain ES module with no imports: the parser, the pixel module and the inflater are passed in.

const SUPPORTED = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};
const UNSUPPORTED = {
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline (Process 1)',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (Process 2 & 4)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless, Non-Hierarchical (Process 14)',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless Image Compression',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Lossy (Near-Lossless) Image Compression',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000 Image Compression',
};
const IMPLICIT_LE = '1.2.840.10008.1.2';
const RLE = '1.2.840.10008.1.2.5';
const BIG_ENDIAN = '1.2.840.10008.1.2.2';

/** True when `bytes` has the DICOM Part 10 signature: "DICM" after the 128-byte preamble. */
export const isDicom = (b) => b.length >= 132 && b[128] === 0x44 && b[129] === 0x49 && b[130] === 0x43 && b[131] === 0x4d;

const messageOf = (e) => String(e instanceof Error ? e.message : typeof e === 'string' ? e : (e && e.exception) || e).split('\n')[0];

function pixelInfo(ds, littleEndian, fail) {
  const us = (tag, what) => ds.uint16(tag) ?? fail(`the file has no ${what} (${tag.slice(1, 5)},${tag.slice(5)})`);
  const bitsStored = ds.uint16('x00280101');
  const center = ds.floatString('x00281050');
  const width = ds.floatString('x00281051');
  const info = {
    rows: us('x00280010', 'Rows'),
    columns: us('x00280011', 'Columns'),
    samplesPerPixel: ds.uint16('x00280002') ?? 1,
    photometric: (ds.string('x00280004') ?? 'MONOCHROME2').trim().toUpperCase(),
    bitsAllocated: us('x00280100', 'Bits Allocated'),
    bitsStored: bitsStored ?? us('x00280100', 'Bits Allocated'),
    highBit: ds.uint16('x00280102') ?? (bitsStored ?? us('x00280100', 'Bits Allocated')) - 1,
    pixelRepresentation: ds.uint16('x00280103') ?? 0,
    planarConfiguration: ds.uint16('x00280006') ?? 0,
    littleEndian,
    numberOfFrames: ds.intString('x00280008') ?? 1,
    rescaleSlope: ds.floatString('x00281053') ?? 1,
    rescaleIntercept: ds.floatString('x00281052') ?? 0,
  };
  if (center !== undefined && width !== undefined) Object.assign(info, { windowCenter: center, windowWidth: width });
  if (ds.string('x00281056')) info.voiLutFunction = ds.string('x00281056').trim();
  return info;
}

function firstFrame(ds, ts, info, parser, pixels, fail) {
  const el = ds.elements.x7fe00010 ?? fail('the file has no Pixel Data (7FE0,0010)');
  if (ts === RLE) {
    if (!el.encapsulatedPixelData) fail('RLE Lossless pixel data is not encapsulated');
    if (!el.fragments?.length) fail('RLE Lossless pixel data has no fragments');
    const frame = parser.readEncapsulatedPixelDataFromFragments(ds, el, 0, 1);
    return { bytes: pixels.decodeRleFrame(frame, info), info: { ...info, littleEndian: true, planarConfiguration: 0 } };
  }
  if (el.encapsulatedPixelData) fail('native transfer syntax with encapsulated pixel data');
  const need = pixels.frameBytes(info);
  if (el.dataOffset + need > ds.byteArray.length || el.length < need) fail(`pixel data is truncated (${Math.min(el.length, ds.byteArray.length - el.dataOffset)} of ${need} bytes of the first frame)`);
  return { bytes: ds.byteArray.subarray(el.dataOffset, el.dataOffset + need), info };
}

/**
 * DICOM bytes -> { width, height, data (uint8 CHW, 3 channels), grey, kind, transferSyntax }.
 * `deps`: { parser: dicom-parser, pixels: lorkd's dicom-pixels module, inflateRaw: raw-deflate
 * bytes -> bytes }. Errors are one line, prefixed with `name`.
 */
export function decodeDicom(bytes, name, deps) {
  const { parser, pixels, inflateRaw } = deps;
  const fail = (m) => {
    throw new Error(`${name}: ${m}`);
  };
  let ds;
  try {
    const inflater = (b, position) => {
      const inflated = inflateRaw(b.subarray(position));
      const full = new Uint8Array(position + inflated.length);
      full.set(b.subarray(0, position), 0);
      full.set(inflated, position);
      return full;
    };
    ds = parser.parseDicom(bytes, isDicom(bytes) ? { inflater } : { TransferSyntaxUID: IMPLICIT_LE });
  } catch (e) {
    fail(`not a readable DICOM file (${messageOf(e).replace(/^dicomParser\.[A-Za-z]+: /, '')})`);
  }
  const ts = (ds.string('x00020010') ?? IMPLICIT_LE).replace(/\0/g, '').trim();
  if (!(ts in SUPPORTED)) fail(`unsupported transfer syntax ${UNSUPPORTED[ts] ?? 'unknown'} (${ts}); lorkd reads ${Object.values(SUPPORTED).join(', ')}`);
  const pfail = (m) => {
    throw new pixels.DicomPixelError(m);
  };
  let img;
  try {
    const { bytes: frame, info } = firstFrame(ds, ts, pixelInfo(ds, ts !== BIG_ENDIAN, pfail), parser, pixels, pfail);
    pixels.checkPixelInfo(info);
    img = pixels.displayImage(frame, info);
  } catch (e) {
    if (e instanceof pixels.DicomPixelError) fail(e.message);
    fail(`corrupt DICOM pixel data (${messageOf(e)})`);
  }
  const hw = img.rows * img.columns;
  const data = new Uint8Array(3 * hw);
  if (img.channels === 1) for (let c = 0; c < 3; c++) data.set(img.data, c * hw);
  else data.set(img.data);
  return { width: img.columns, height: img.rows, data, grey: img.channels === 1, kind: 'DICOM', transferSyntax: SUPPORTED[ts] };
}
