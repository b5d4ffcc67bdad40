// A pack worker (piscina, see pack.ts): one item -> its stored images. A source file is read and
// decoded (PNG, JPEG, DICOM with every frame: data/image-decode.ts), an npz row arrives as pixels;
// each image is resized (data/image-resize.ts: raw to S x S, jpeg with the shorter side S) and
// encoded (codec.ts). A bad file is returned as {error} (one line), so the pack skips it.
import { Piscina } from 'piscina';
import { readRegular } from '../io/read.js';
import { type Image, imageFrames } from '../data/image-decode.js';
import { resizeBilinear } from '../data/image-resize.js';
import { limit } from '../io/limits.js';
import { decodeJpeg, encodeStored } from './codec.js';
import type { Storage } from './format.js';
import type { StoredImage } from './writer.js';

export interface PackJob {
  file?: string;
  /** An npz row: CHW 3 planes. */
  pixels?: { data: Uint8Array; height: number; width: number; grey: boolean };
  storage: Storage;
  size: number;
  quality: number;
}

export type PackReply = { images: StoredImage[] } | { error: string };

const isJpeg = (b: Uint8Array): boolean => b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

/** The stored size of an image of height x width: S x S (raw) or the shorter side S (jpeg, torchvision's Resize(S)). */
export function storedSize(height: number, width: number, storage: Storage, size: number): [number, number] {
  if (storage === 'raw') return [size, size];
  if (height <= width) return [size, Math.max(1, Math.trunc((size * width) / height))];
  return [Math.max(1, Math.trunc((size * height) / width)), size];
}

export async function storeImage(img: Image, job: Pick<PackJob, 'storage' | 'size' | 'quality'>): Promise<StoredImage> {
  const [h, w] = storedSize(img.height, img.width, job.storage, job.size);
  const r = resizeBilinear(img, h, w);
  return { bytes: await encodeStored(r, job.storage, job.quality), height: h, width: w, grey: r.grey };
}

/** The reply with each image's bytes transferred, not copied (a copy would leave garbage in both threads). */
function moved(images: StoredImage[]): PackReply {
  const own = images.map((im) => (im.bytes.byteOffset === 0 && im.bytes.byteLength === im.bytes.buffer.byteLength ? im : { ...im, bytes: im.bytes.slice() }));
  const buffers = [...new Set(own.map((im) => im.bytes.buffer as ArrayBuffer))];
  return Piscina.move({
    get [Piscina.transferableSymbol]() {
      return buffers;
    },
    get [Piscina.valueSymbol]() {
      return { images: own };
    },
  } as unknown as ArrayBuffer) as unknown as PackReply;
}

export default async function packItem(job: PackJob): Promise<PackReply> {
  try {
    const images: StoredImage[] = [];
    if (job.pixels) images.push(await storeImage(job.pixels, job));
    else {
      const bytes = readRegular(job.file!, { what: 'image' });
      // JPEG files through libjpeg-turbo (sharp): 4x jpeg-js here. Its pixels may differ from the
      // in-memory path's jpeg-js by a level or two; PNG and DICOM pixels are the same.
      if (isJpeg(bytes)) images.push(await storeImage(await decodeJpeg(bytes, job.file!, limit('imagePixels')), job));
      else {
        // Frames are decoded one at a time: a long multi-frame file costs one frame of pixels.
        const frames = imageFrames(bytes, job.file!);
        for (let k = 0; k < frames.count; k++) images.push(await storeImage(frames.frame(k), job));
      }
    }
    return moved(images);
  } catch (e) {
    if ((e as Error)?.name === 'UserError') return { error: (e as Error).message.split('\n')[0]! };
    return { error: `${job.file ?? 'npz row'}: ${(e as Error)?.message?.split('\n')[0] ?? String(e)}` };
  }
}
