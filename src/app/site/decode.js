// Image files -> { width, height, data, grey, kind }: uint8 CHW RGB, the same layout and pixels
// as lorkd's Node decoders (src/data/images.ts). The format is read from the bytes, not the name:
// PNG (png.js, pngjs's rules), JPEG (jpeg-js, the decoder lorkd uses), DICOM (dicom.js:
// dicom-parser, lorkd's DICOM pixel module and, for compressed frames, lorkd's decoders over the
// same WASM codecs: codecs.js): the pixels equal `lorkd predict`'s. The browser's
// own decoders are not used: they premultiply alpha, round 16-bit samples differently and may
// apply colour profiles.

import { decodeDicom } from './dicom.js';
import { browserEnv, pageCodecs } from './codecs.js';
import { decodePng } from './png.js';

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const isPng = (b) => b.length >= 8 && PNG_MAGIC.every((v, i) => b[i] === v);
const isDicom = (b) => b.length >= 132 && b[128] === 0x44 && b[129] === 0x49 && b[130] === 0x43 && b[131] === 0x4d;
const isJpeg = (b) => b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

/** Interleaved pixels (`step` bytes each, R G B first) -> CHW planes; alpha is dropped. */
function planar(src, hw, step) {
  const out = new Uint8Array(3 * hw);
  for (let p = 0, s = 0; p < hw; p++, s += step) {
    out[p] = src[s];
    out[hw + p] = src[s + 1];
    out[2 * hw + p] = src[s + 2];
  }
  return out;
}

function isGrey(data, hw) {
  for (let p = 0; p < hw; p++) if (data[p] !== data[hw + p] || data[p] !== data[2 * hw + p]) return false;
  return true;
}

function readPng(bytes, name) {
  if (!globalThis.fflate) throw new Error('the PNG inflater did not load');
  return { ...decodePng(bytes, name, (b) => globalThis.fflate.unzlibSync(b)), kind: 'PNG' };
}

function decodeJpeg(bytes, name) {
  const jpeg = globalThis['jpeg-js'];
  if (!jpeg) throw new Error('the JPEG decoder did not load');
  let img;
  try {
    img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, tolerantDecoding: false, maxResolutionInMP: 200 });
  } catch (e) {
    throw new Error(`${name}: corrupt or unsupported JPEG (${e && e.message ? e.message : e})`);
  }
  const { width, height } = img;
  if (!(width > 0 && height > 0) || img.data.length !== width * height * 3) throw new Error(`${name}: corrupt JPEG (no pixel data)`);
  const data = planar(img.data, width * height, 3);
  return { width, height, data, grey: isGrey(data, width * height), kind: 'JPEG' };
}

let dicomPixels;
let dicomCodecs;
async function readDicom(bytes, name) {
  if (!globalThis.dicomParser || !globalThis.fflate) throw new Error('the DICOM parser did not load');
  if (dicomPixels === undefined) dicomPixels = await import('./vendor/dicom-pixels.js').catch(() => null);
  if (!dicomPixels) throw new Error(`${name}: this build of the app has no DICOM support (lorkd's dicom-pixels module was missing when it was built)`);
  // Without lorkd's decoder module (an app built before it was compiled) compressed syntaxes are refused by name.
  if (dicomCodecs === undefined) dicomCodecs = await import('./vendor/dicom-decoders.js').then((m) => pageCodecs(m, browserEnv)).catch(() => null);
  return decodeDicom(bytes, name, { parser: globalThis.dicomParser, pixels: dicomPixels, inflateRaw: (b) => globalThis.fflate.inflateSync(b), ...(dicomCodecs ? { codecs: dicomCodecs } : {}) });
}

/**
 * Decodes PNG, JPEG or DICOM bytes into uint8 CHW RGB (grey repeated to 3 channels). `name`
 * prefixes error messages; anything else is an Error with one line saying why.
 */
export async function decodeImage(bytes, name) {
  if (isPng(bytes)) return readPng(bytes, name);
  if (isJpeg(bytes)) return decodeJpeg(bytes, name);
  // DICOM by its signature or, with a .dcm name, as a bare data set (as lorkd reads them).
  if (isDicom(bytes) || /\.(dcm|dicom)$/i.test(name)) return readDicom(bytes, name);
  throw new Error(`${name}: not a PNG, JPEG or DICOM file`);
}

/** Whether a file in a dropped folder is tried: PNG/JPEG/DICOM extensions, or none (DICOM files often have none). */
export const isImageName = (n) => !n.startsWith(".") && (/\.(png|jpe?g|dcm|dicom)$/i.test(n) || !/\.[^./]+$/.test(n));
