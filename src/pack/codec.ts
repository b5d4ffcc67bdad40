// Stored image bytes <-> the data layer's Image (uint8 CHW, 3 planes). raw: the image's own planes
// (1 for a grey image, 3 for colour), row-major, at the stored size; jpeg: a JPEG file (grey images
// as 1-component JPEGs), encoded and decoded with sharp (libvips + libjpeg-turbo; measured 4x
// faster than jpeg-js here). Nothing here loads libtorch, so worker threads run it.
import sharp from 'sharp';
import { UserError } from '../tensor/errors.js';
import type { Image } from '../data/image-decode.js';
import type { Storage } from './format.js';

// Each call is one image: libvips's own thread pool and cache only add overhead.
sharp.concurrency(1);
sharp.cache(false);

/** Raw stored bytes (c planes of height x width, c = 1 or 3) -> Image (grey repeated into 3 planes). */
export function decodeRaw(bytes: Uint8Array, height: number, width: number, name = '<raw image>'): Image {
  const hw = height * width;
  if (bytes.length === 3 * hw) return { height, width, data: bytes, grey: false };
  if (bytes.length !== hw) throw new UserError(`${name}: ${bytes.length} bytes is not a ${height}x${width} image of 1 or 3 channels`);
  const data = new Uint8Array(3 * hw);
  for (let c = 0; c < 3; c++) data.set(bytes, c * hw);
  return { height, width, data, grey: true };
}

/** Interleaved (HWC) pixels with `channels` samples -> Image planes (grey repeated; alpha dropped). */
export function hwcToImage(src: Uint8Array, height: number, width: number, channels: number): Image {
  const hw = height * width;
  const data = new Uint8Array(3 * hw);
  if (channels === 1 || channels === 2) {
    if (channels === 1) for (let c = 0; c < 3; c++) data.set(src.subarray(0, hw), c * hw);
    else for (let p = 0; p < hw; p++) data[p] = data[hw + p] = data[2 * hw + p] = src[2 * p]!;
    return { height, width, data, grey: true };
  }
  for (let p = 0, s = 0; p < hw; p++, s += channels) {
    data[p] = src[s]!;
    data[hw + p] = src[s + 1]!;
    data[2 * hw + p] = src[s + 2]!;
  }
  return { height, width, data, grey: false };
}

/** True when every pixel of a 3-plane image has R = G = B. */
function allGrey(img: Image): boolean {
  const hw = img.height * img.width;
  const d = img.data;
  for (let p = 0; p < hw; p++) if (d[p] !== d[hw + p] || d[p] !== d[2 * hw + p]) return false;
  return true;
}

/**
 * JPEG bytes -> Image (sharp). A colour JPEG whose pixels are all grey counts as grey (as
 * data/image-decode.ts's reading does). A corrupt or truncated JPEG, or one over `maxPixels`, is
 * a one-line UserError naming `name`.
 */
export async function decodeJpeg(bytes: Uint8Array, name = '<jpeg>', maxPixels?: number): Promise<Image> {
  let img: Image;
  try {
    const { data, info } = await sharp(bytes, { failOn: 'truncated', ...(maxPixels ? { limitInputPixels: maxPixels } : {}) }).raw().toBuffer({ resolveWithObject: true });
    img = hwcToImage(data, info.height, info.width, info.channels);
  } catch (e) {
    throw new UserError(`${name}: corrupt JPEG (${(e as Error).message.split('\n')[0]})`);
  }
  return img.grey || !allGrey(img) ? img : { ...img, grey: true };
}

/**
 * Stored bytes of one record -> Image (CHW, 3 planes). `height`/`width` are the record's (raw
 * needs them; a JPEG carries its own). `name` prefixes errors (the reader passes the shard).
 */
export async function decodeStored(bytes: Uint8Array, storage: Storage, height: number, width: number, name?: string): Promise<Image> {
  return storage === 'raw' ? decodeRaw(bytes, height, width, name) : decodeJpeg(bytes, name);
}

/** Image planes -> HWC with 1 (grey) or 3 channels. */
export function imageToHwc(img: Image): { data: Uint8Array; channels: 1 | 3 } {
  const hw = img.height * img.width;
  if (img.grey) return { data: img.data.subarray(0, hw), channels: 1 };
  const out = new Uint8Array(3 * hw);
  for (let p = 0, d = 0; p < hw; p++, d += 3) {
    out[d] = img.data[p]!;
    out[d + 1] = img.data[hw + p]!;
    out[d + 2] = img.data[2 * hw + p]!;
  }
  return { data: out, channels: 3 };
}

/** An image (already at its stored size) -> its stored bytes: raw planes (1 when grey, else 3) or a JPEG. */
export async function encodeStored(img: Image, storage: Storage, quality = 90): Promise<Uint8Array> {
  const hw = img.height * img.width;
  if (storage === 'raw') return img.grey ? img.data.slice(0, hw) : img.data;
  const { data, channels } = imageToHwc(img);
  const out = await sharp(data, { raw: { width: img.width, height: img.height, channels } }).jpeg({ quality, chromaSubsampling: '4:4:4' }).toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
