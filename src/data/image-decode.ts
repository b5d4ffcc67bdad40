// Image bytes -> the data layer's uint8 CHW 3-channel form: PNG (png-decode.ts), JPEG (jpeg-js)
// and DICOM (dicom.ts), the format read from the bytes. Nothing here loads libtorch, so the serve
// decode workers (src/serve/decode-worker.ts) run it as it is.
import path from 'node:path';
import jpeg from 'jpeg-js';
import { UserError } from '../tensor/errors.js';
import { limit, checkLimit } from '../io/limits.js';
import { decodePngPixels } from './png-decode.js';
import { DICOM_EXTENSIONS, decodeDicom, dicomFrames, dicomImageSize, dicomToImage, isDicom } from './dicom.js';

/** One decoded image: uint8 CHW with 3 channels (R, G, B). */
export interface Image {
  height: number;
  width: number;
  /** 3 * height * width bytes: channel, then row, then column. */
  data: Uint8Array;
  /** True when the file itself is greyscale (PNG colour types 0/4, or a 1-component JPEG). */
  grey: boolean;
}

/** File extensions read as images (case-insensitive). */
export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg', '.dcm', '.dicom'];

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const isPng = (b: Uint8Array): boolean => b.length >= 8 && PNG_MAGIC.every((v, i) => b[i] === v);
const isJpeg = (b: Uint8Array): boolean => b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

/** Interleaved pixels (`step` bytes each, R G B first) -> CHW 3 planes; extra channels (alpha) are dropped. */
function planar(src: Uint8Array, hw: number, step: number): Uint8Array {
  const out = new Uint8Array(3 * hw);
  for (let p = 0, s = 0; p < hw; p++, s += step) {
    out[p] = src[s]!;
    out[hw + p] = src[s + 1]!;
    out[2 * hw + p] = src[s + 2]!;
  }
  return out;
}

/** Width and height from a JPEG's first start-of-frame marker, or null when there is none. */
function jpegSize(b: Uint8Array): { width: number; height: number } | null {
  let p = 2;
  while (p + 9 < b.length) {
    if (b[p] !== 0xff) return null;
    const marker = b[p + 1]!;
    if (marker === 0xff) {
      p++;
      continue;
    }
    const len = (b[p + 2]! << 8) | b[p + 3]!;
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC)
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: (b[p + 5]! << 8) | b[p + 6]!, width: (b[p + 7]! << 8) | b[p + 8]! };
    }
    if (marker === 0xda) return null;
    p += 2 + len;
  }
  return null;
}

function decodeJpeg(bytes: Uint8Array, name: string): Image {
  const size = jpegSize(bytes);
  if (size === null) throw new UserError(`${name}: corrupt or unsupported JPEG (truncated: no frame header)`);
  checkLimit('imagePixels', size.width * size.height, `${name}: a ${size.width}x${size.height} JPEG (${size.width * size.height} pixels)`);
  if (!endsWithEoi(bytes)) throw new UserError(`${name}: corrupt or unsupported JPEG (truncated: no end-of-image marker, the file is cut off)`);
  let img: { width: number; height: number; data: Uint8Array };
  try {
    const pixels = limit('imagePixels');
    img = jpeg.decode(bytes, {
      useTArray: true, formatAsRGBA: false, tolerantDecoding: false,
      maxResolutionInMP: pixels / 1e6, maxMemoryUsageInMB: Math.max(512, Math.ceil((pixels * 16) / 2 ** 20)),
    });
  } catch (e) {
    throw new UserError(`${name}: corrupt or unsupported JPEG (${(e as Error).message ?? String(e)})`);
  }
  const { width, height } = img;
  if (!(width > 0 && height > 0) || img.data.length !== width * height * 3) throw new UserError(`${name}: corrupt JPEG (no pixel data)`);
  const data = planar(img.data, width * height, 3);
  // jpeg-js expands a 1-component (grey) JPEG to R = G = B and does not report the component
  // count, so greyness is read off the pixels.
  const hw = width * height;
  let grey = true;
  for (let p = 0; p < hw && grey; p++) grey = data[p] === data[hw + p] && data[p] === data[2 * hw + p];
  return { width, height, data, grey };
}

/** A complete JPEG ends with the EOI marker (FF D9), possibly followed by padding zeros. */
function endsWithEoi(b: Uint8Array): boolean {
  let end = b.length;
  while (end > 2 && b[end - 1] === 0) end--;
  return end >= 4 && b[end - 2] === 0xff && b[end - 1] === 0xd9;
}

/**
 * Decodes PNG or JPEG bytes (the format is read from the file's signature, not its name) into
 * uint8 CHW RGB: grey becomes 3 equal channels, alpha is dropped (pixels keep their colour; a
 * PNG tRNS transparent colour reads as black), 16-bit PNGs are scaled to 8 bits.
 * `name` prefixes error messages. Unsupported, corrupt or truncated data is a UserError, and so
 * is an image over the pixel limit (LORKD_MAX_IMAGE_PIXELS, checked from the header before any
 * pixel is decoded).
 */
export function decodeImage(bytes: Uint8Array, name = '<image>'): Image {
  // DICOM (src/data/dicom.ts): by its signature, or a .dcm name (a bare data set without one).
  if (isDicom(bytes) || DICOM_EXTENSIONS.includes(path.extname(name).toLowerCase())) return dicomToImage(decodeDicom(bytes, name));
  if (isPng(bytes)) return decodePngPixels(bytes, name);
  if (isJpeg(bytes)) return decodeJpeg(bytes, name);
  throw new UserError(`${name}: not a PNG or JPEG image (unsupported format)`);
}

/** The frames of an image file: one for PNG and JPEG, every frame of a multi-frame DICOM file. */
export interface ImageFrames {
  count: number;
  /** Frame k, decoded when asked (errors as decodeImage). */
  frame(k: number): Image;
}

/** The frames of PNG, JPEG or DICOM bytes (see decodeImage); a DICOM file's frames are decoded one by one. */
export function imageFrames(bytes: Uint8Array, name = '<image>'): ImageFrames {
  if (isDicom(bytes) || DICOM_EXTENSIONS.includes(path.extname(name).toLowerCase())) {
    const d = dicomFrames(bytes, name);
    return { count: d.count, frame: (k) => dicomToImage(d.frame(k)) };
  }
  const img = decodeImage(bytes, name);
  return { count: 1, frame: () => img };
}

/**
 * The pixels an image's header claims (PNG IHDR, JPEG frame header, DICOM rows x columns), read
 * without decoding, for admission control; 0 when the bytes claim nothing readable (decoding will
 * refuse them).
 */
export function claimedPixels(bytes: Uint8Array, name = '<image>'): number {
  if (isDicom(bytes) || DICOM_EXTENSIONS.includes(path.extname(name).toLowerCase())) {
    const s = dicomImageSize(bytes);
    return s ? s.rows * s.columns : 0;
  }
  if (isPng(bytes) && bytes.length >= 24) {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return dv.getUint32(16) * dv.getUint32(20);
  }
  if (isJpeg(bytes)) {
    const s = jpegSize(bytes);
    return s ? s.width * s.height : 0;
  }
  return 0;
}
