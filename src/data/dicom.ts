// DICOM files (.dcm) read with dicom-parser and turned into the data layer's images. The reading
// rules and the pixel math (modality LUT, window or min-max, MONOCHROME1 inversion) live in the
// dependency-free dicom-pixels.ts, which the browser app shares; this file passes it the npm
// parser, the pixel limit and one-line UserErrors. Transfer syntaxes: implicit/explicit VR little
// endian, explicit big endian, deflated (inflated with a bound: dicom-inflate.ts), RLE Lossless,
// and the JPEG family (Baseline, Lossless, JPEG-LS, JPEG 2000, HTJ2K) through dicom-codecs.ts. Multi-frame files: readDicomFrame and decodeDicom give the first frame, dicomFrames
// every frame.
// image-decode.ts's decodeImage (and images.ts's readImage) hand DICOM bytes (by signature or a .dcm name) to decodeDicom.
import dicomParser from 'dicom-parser';
import { UserError } from '../tensor/errors.js';
import { type DicomFrame, type DicomParserLike, type DisplayImage, type ReadDicomOptions, DicomPixelError, displayImage, isDicom, readDicomFramesWith, rgbPlanes } from './dicom-pixels.js';
import { type Image, decodeImage } from './image-decode.js';
import { readRegular } from '../io/read.js';
import { checkLimit } from '../io/limits.js';
import { boundedInflater, declaredFrame } from './dicom-inflate.js';
import { DICOM_CODECS } from './dicom-codecs.js';

export { isDicom, SUPPORTED_TRANSFER_SYNTAXES, UNSUPPORTED_TRANSFER_SYNTAXES, type DicomFrame } from './dicom-pixels.js';

/** A decoded DICOM frame and what the file said about it. */
export interface DicomImage extends DisplayImage {
  transferSyntax: string;
  photometric: string;
  numberOfFrames: number;
  /** Window used (absent: min-max). */
  window?: { center: number; width: number };
}

const asUserError = <T>(name: string, f: () => T): T => {
  try {
    return f();
  } catch (e) {
    throw e instanceof DicomPixelError ? new UserError(`${name}: ${e.message}`) : e;
  }
};

/** dicom-parser with the pixel limit and the bounded inflater. */
function readOptions(name: string): ReadDicomOptions & { parser: DicomParserLike } {
  const parser = dicomParser as unknown as DicomParserLike;
  const checkSize = (rows: number, columns: number): void => checkLimit('imagePixels', rows * columns, `${name}: a ${columns}x${rows} DICOM image (${rows * columns} pixels)`);
  return { parser, checkSize, inflater: boundedInflater(parser, { checkSize }), codecs: DICOM_CODECS };
}

/**
 * Parses DICOM bytes (dicom-parser; deflated files inflated with a bound) and returns the number
 * of frames and each frame as an 8-bit display image, decoded when asked (see decodeDicom).
 * Errors as readDicomFrame.
 */
export function dicomFrames(bytes: Uint8Array, name = '<dicom>'): { count: number; frame(k: number): DicomImage } {
  const { parser, ...o } = readOptions(name);
  const frames = asUserError(name, () => readDicomFramesWith(parser, bytes, o));
  return { count: frames.count, frame: (k) => toDicomImage(asUserError(name, () => frames.frame(k)), name) };
}

/**
 * Parses DICOM bytes (dicom-parser; deflated files inflated with node:zlib) and returns the
 * first frame's native pixel bytes and description. `name` prefixes errors, which are one-line
 * UserErrors: not DICOM, truncated, no pixel data, an unsupported transfer syntax (named, with
 * its UID) or pixel format, an image over LORKD_MAX_IMAGE_PIXELS.
 */
export function readDicomFrame(bytes: Uint8Array, name = '<dicom>'): DicomFrame {
  const { parser, ...o } = readOptions(name);
  return asUserError(name, () => readDicomFramesWith(parser, bytes, o).frame(0));
}

/**
 * The image size a DICOM file's header declares (rows x columns), read without decoding any
 * pixel (a deflated file is inflated only up to its Pixel Data element), or null when unreadable.
 */
export function dicomImageSize(bytes: Uint8Array): { rows: number; columns: number } | null {
  const parser = dicomParser as unknown as DicomParserLike;
  try {
    const opts = isDicom(bytes) ? { inflater: boundedInflater(parser, { headerOnly: true }) } : { TransferSyntaxUID: '1.2.840.10008.1.2' };
    const ds = parser.parseDicom(bytes, { ...opts, untilTag: 'x7fe00010' });
    const f = declaredFrame(ds);
    return f && { rows: f.rows, columns: f.columns };
  } catch {
    return null;
  }
}

/** One native frame -> the display image and what the file said about it. */
function toDicomImage({ info, bytes: frame, transferSyntax }: DicomFrame, name: string): DicomImage {
  const img = asUserError(name, () => displayImage(frame, info));
  return {
    ...img,
    transferSyntax,
    photometric: info.photometric,
    numberOfFrames: info.numberOfFrames,
    ...(info.windowCenter !== undefined && info.windowWidth !== undefined ? { window: { center: info.windowCenter, width: info.windowWidth } } : {}),
  };
}

/**
 * Decodes the first frame of a DICOM file's bytes into an 8-bit display image (modality LUT,
 * window or min-max, MONOCHROME1 inverted; see dicom-pixels.ts). Errors as readDicomFrame.
 */
export function decodeDicom(bytes: Uint8Array, name = '<dicom>'): DicomImage {
  return toDicomImage(readDicomFrame(bytes, name), name);
}

/** A decoded DICOM frame as the data layer's Image (grey repeated into 3 channels). */
export function dicomToImage(d: DisplayImage): Image {
  return { height: d.rows, width: d.columns, data: rgbPlanes(d), grey: d.channels === 1 };
}

/** File extensions read as DICOM (case-insensitive), beside any file with the DICM signature. */
export const DICOM_EXTENSIONS: readonly string[] = ['.dcm', '.dicom'];

/** PNG, JPEG or DICOM bytes -> Image: image-decode.ts's decodeImage, which hands DICOM here. */
export function decodeAnyImage(bytes: Uint8Array, name = '<image>'): Image {
  return decodeImage(bytes, name);
}

/** Reads a PNG, JPEG or DICOM file (images.ts's readImage). */
export function readAnyImage(file: string): Image {
  return decodeImage(readRegular(file, { what: 'image' }), file);
}
