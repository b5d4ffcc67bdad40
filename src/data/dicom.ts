// DICOM files (.dcm) read with dicom-parser and turned into the data layer's images: the data set's
// pixel description goes to the dependency-free pixel math of dicom-pixels.ts (modality LUT,
// window or min-max, MONOCHROME1 inversion). Transfer syntaxes: implicit/explicit VR little
// endian, explicit big endian, deflated (dicom-parser inflates it with node:zlib) and RLE
// Lossless. JPEG-family syntaxes (JPEG-LS, JPEG 2000, ...) are one-line "unsupported transfer
// syntax" errors: their codecs are not installed. Multi-frame files give their first frame.
// images.ts's decodeImage/readImage hand DICOM bytes (by signature or a .dcm name) to decodeDicom.
import dicomParser from 'dicom-parser';
import { UserError } from '../tensor/errors.js';
import { type DicomPixelInfo, type DisplayImage, DicomPixelError, checkPixelInfo, decodeRleFrame, displayImage, frameBytes } from './dicom-pixels.js';
import { type Image, decodeImage, readImage } from './images.js';
import { checkLimit } from '../io/limits.js';

/** Transfer syntaxes whose pixel data lorkd reads. */
export const SUPPORTED_TRANSFER_SYNTAXES: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

/** Names of compressed transfer syntaxes lorkd recognises but cannot decode (for the error message). */
const UNSUPPORTED: Readonly<Record<string, string>> = {
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

/** A decoded DICOM frame and what the file said about it. */
export interface DicomImage extends DisplayImage {
  transferSyntax: string;
  photometric: string;
  numberOfFrames: number;
  /** Window used (absent: min-max). */
  window?: { center: number; width: number };
}

type DataSet = ReturnType<typeof dicomParser.parseDicom>;

function pixelInfo(ds: DataSet, littleEndian: boolean): DicomPixelInfo {
  const us = (tag: string, what: string): number => ds.uint16(tag) ?? fail(`the file has no ${what} (${tag.slice(1, 5)},${tag.slice(5)})`);
  const bitsStored = ds.uint16('x00280101');
  const center = ds.floatString('x00281050');
  const width = ds.floatString('x00281051');
  const info: DicomPixelInfo = {
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
    ...(center !== undefined && width !== undefined ? { windowCenter: center, windowWidth: width } : {}),
    ...(ds.string('x00281056') ? { voiLutFunction: ds.string('x00281056')!.trim() } : {}),
  };
  return info;
}

const fail = (msg: string): never => {
  throw new DicomPixelError(msg);
};

/** The first frame's native pixel bytes (RLE decoded; the info then describes little-endian, by-pixel data). */
function firstFrame(ds: DataSet, ts: string, info: DicomPixelInfo): { bytes: Uint8Array; info: DicomPixelInfo } {
  const el = ds.elements.x7fe00010 ?? fail('the file has no Pixel Data (7FE0,0010)');
  if (ts === RLE) {
    if (!el.encapsulatedPixelData) fail('RLE Lossless pixel data is not encapsulated');
    // RLE puts each frame in one fragment (PS3.5 A.4.2).
    if (!el.fragments?.length) fail('RLE Lossless pixel data has no fragments');
    const frame = dicomParser.readEncapsulatedPixelDataFromFragments(ds, el, 0, 1);
    const rleInfo = { ...info, littleEndian: true, planarConfiguration: 0 };
    return { bytes: decodeRleFrame(frame, info), info: rleInfo };
  }
  if (el.encapsulatedPixelData) fail('native transfer syntax with encapsulated pixel data');
  const need = frameBytes(info);
  if (el.dataOffset + need > ds.byteArray.length || el.length < need) fail(`pixel data is truncated (${Math.min(el.length, ds.byteArray.length - el.dataOffset)} of ${need} bytes of the first frame)`);
  return { bytes: ds.byteArray.subarray(el.dataOffset, el.dataOffset + need), info };
}

/** The first frame of a DICOM file, native (RLE decoded), with the description dicom-pixels.ts needs. */
export interface DicomFrame {
  info: DicomPixelInfo;
  /** Native pixel bytes of frame 0 (as `info` describes them). */
  bytes: Uint8Array;
  transferSyntax: string;
}

const messageOf = (e: unknown): string =>
  (e instanceof Error ? e.message : typeof e === 'string' ? e : String((e as { exception?: string })?.exception ?? e)).split('\n')[0]!;

/**
 * Parses DICOM bytes and returns the first frame's native pixel bytes and pixel description.
 * `name` prefixes errors, which are one-line UserErrors: not DICOM, truncated, no pixel data, an
 * unsupported transfer syntax (named, with its UID) or pixel format.
 */
export function readDicomFrame(bytes: Uint8Array, name = '<dicom>'): DicomFrame {
  let ds: DataSet;
  try {
    // Files without the Part 10 header are read as a bare implicit VR little endian data set.
    ds = dicomParser.parseDicom(bytes, isDicom(bytes) ? undefined : { TransferSyntaxUID: IMPLICIT_LE });
  } catch (e) {
    const msg = messageOf(e).replace(/^dicomParser[.:][A-Za-z]+: /, '');
    if (/buffer overrun/.test(msg)) throw new UserError(`${name}: truncated or corrupt DICOM file (the data ends inside an element)`);
    throw new UserError(`${name}: not a readable DICOM file (${msg})`);
  }
  const ts = (ds.string('x00020010') ?? IMPLICIT_LE).replace(/\0/g, '').trim();
  if (!(ts in SUPPORTED_TRANSFER_SYNTAXES)) {
    throw new UserError(`${name}: unsupported transfer syntax ${UNSUPPORTED[ts] ?? 'unknown'} (${ts}); lorkd reads ${Object.values(SUPPORTED_TRANSFER_SYNTAXES).join(', ')}`);
  }
  try {
    const described = pixelInfo(ds, ts !== BIG_ENDIAN);
    checkLimit('imagePixels', described.rows * described.columns, `${name}: a ${described.columns}x${described.rows} DICOM image (${described.rows * described.columns} pixels)`);
    const { bytes: frame, info } = firstFrame(ds, ts, described);
    checkPixelInfo(info);
    return { info, bytes: frame, transferSyntax: ts };
  } catch (e) {
    if (e instanceof UserError) throw e;
    if (e instanceof DicomPixelError) throw new UserError(`${name}: ${e.message}`);
    throw new UserError(`${name}: corrupt DICOM pixel data (${messageOf(e)})`);
  }
}

/**
 * Decodes the first frame of a DICOM file's bytes into an 8-bit display image (modality LUT,
 * window or min-max, MONOCHROME1 inverted; see dicom-pixels.ts). Errors as readDicomFrame.
 */
export function decodeDicom(bytes: Uint8Array, name = '<dicom>'): DicomImage {
  const { info, bytes: frame, transferSyntax } = readDicomFrame(bytes, name);
  let img: DisplayImage;
  try {
    img = displayImage(frame, info);
  } catch (e) {
    throw new UserError(`${name}: ${messageOf(e)}`);
  }
  return {
    ...img,
    transferSyntax,
    photometric: info.photometric,
    numberOfFrames: info.numberOfFrames,
    ...(info.windowCenter !== undefined && info.windowWidth !== undefined ? { window: { center: info.windowCenter, width: info.windowWidth } } : {}),
  };
}

/** A decoded DICOM frame as the data layer's Image (grey repeated into 3 channels). */
export function dicomToImage(d: DisplayImage): Image {
  const hw = d.rows * d.columns;
  const data = new Uint8Array(3 * hw);
  if (d.channels === 1) for (let c = 0; c < 3; c++) data.set(d.data, c * hw);
  else data.set(d.data);
  return { height: d.rows, width: d.columns, data, grey: d.channels === 1 };
}

/** File extensions read as DICOM (case-insensitive), beside any file with the DICM signature. */
export const DICOM_EXTENSIONS: readonly string[] = ['.dcm', '.dicom'];

/** PNG, JPEG or DICOM bytes -> Image: images.ts's decodeImage, which hands DICOM here. */
export function decodeAnyImage(bytes: Uint8Array, name = '<image>'): Image {
  return decodeImage(bytes, name);
}

/** Reads a PNG, JPEG or DICOM file: images.ts's readImage. */
export function readAnyImage(file: string): Image {
  return readImage(file);
}
