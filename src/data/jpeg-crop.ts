// One JPEG row of a batch (the JPEG-pack recipe): decode, crop to a box, resize to out x out with
// Pillow's bilinear filter (what torchvision's RandomResizedCrop does to a PIL image), mirror when
// asked, write 3 planes into the batch. Two implementations give the same bytes (tested):
// - native/jpeg/crop.cc (the lorkd_jpeg addon, libjpeg-turbo, synchronous): decodes only the box's
//   rows and iMCU columns; about 0.55 ms of CPU per 224 px image here, against 3 ms through sharp
//   (0.6 ms of sharp's is per-call overhead);
// - sharp's decode (libjpeg-turbo on libuv's pool) then resample.ts, when the addon is not built
//   (no libjpeg62-turbo-dev). Neither loads libtorch: stream worker threads run both.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import sharp from 'sharp';
import type { CropBox } from './crop.js';
import { resizedCropInto } from './resample.js';

interface JpegAddon {
  decodeCropInto(jpeg: Uint8Array, left: number, top: number, width: number, height: number, out: number, flip: boolean, dst: Uint8Array, at: number): void;
}

let addon: JpegAddon | null | undefined;

/** The lorkd_jpeg addon, or null when it is not built. */
export function jpegAddon(): JpegAddon | null {
  if (addon !== undefined) return addon;
  const here = path.dirname(fileURLToPath(import.meta.url));
  // src/data -> repo root, whether running from dist/src/data or src/data
  const file = ['../..', '../../..'].map((up) => path.resolve(here, up, 'native/build/Release/lorkd_jpeg.node')).find((p) => existsSync(p));
  addon = file ? (createRequire(import.meta.url)(file) as JpegAddon) : null;
  return addon;
}

/** The row through the addon (synchronous). Throws libjpeg's message on a corrupt JPEG. */
export function nativeJpegCrop(a: JpegAddon, bytes: Uint8Array, box: CropBox, out: number, flip: boolean, dst: Uint8Array, at: number): void {
  a.decodeCropInto(bytes, box.left, box.top, box.width, box.height, out, flip, dst, at);
}

/** The row through sharp's decode and resample.ts. */
export async function sharpJpegCrop(bytes: Uint8Array, box: CropBox, out: number, flip: boolean, dst: Uint8Array, at: number): Promise<void> {
  const { data, info } = await sharp(bytes, { failOn: 'truncated' }).raw().toBuffer({ resolveWithObject: true });
  resizedCropInto({ data, height: info.height, width: info.width, channels: info.channels }, box, out, flip, dst, at);
}
