// Image files: PNG (pngjs) and JPEG (jpeg-js) decoded to the data layer's uint8 CHW 3-channel
// form, and ImageFolder-layout directories loaded as a TaskData (like a MedMNIST subset).
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import jpeg from 'jpeg-js';
import { tensor, interpolate, tidy } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { limit, checkLimit } from '../io/limits.js';
import { readRegular } from '../io/read.js';
import { decodePngPixels } from './png-decode.js';
import { DICOM_EXTENSIONS, decodeDicom, dicomToImage, isDicom } from './dicom.js';
import { type ImageSplit, type Split, SPLITS, type TaskData } from './dataset.js';

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

function decodePng(bytes: Uint8Array, name: string): Image {
  // Size against the pixel limit and the pixel data's inflated size first, then the pixels in a
  // fixed number of allocations for any shape (png-decode.ts).
  return decodePngPixels(bytes, name);
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
  if (isPng(bytes)) return decodePng(bytes, name);
  if (isJpeg(bytes)) return decodeJpeg(bytes, name);
  throw new UserError(`${name}: not a PNG or JPEG image (unsupported format)`);
}

/** Reads and decodes a PNG or JPEG file (see decodeImage). */
export function readImage(file: string): Image {
  return decodeImage(readRegular(file, { what: 'image' }), file);
}

/**
 * Resizes an image to height x width with bilinear interpolation (torch F.interpolate,
 * align_corners=False, no antialias: the same resize as the batch transforms), rounding back to
 * uint8 half up (floor(v + 0.5)). Returns the image itself when it already has that size.
 */
export function resizeImage(img: Image, height: number, width: number): Image {
  if (img.height === height && img.width === width) return img;
  if (!(Number.isInteger(height) && height >= 1 && Number.isInteger(width) && width >= 1)) {
    throw new UserError(`image size must be positive integers, got ${height}x${width}`);
  }
  const data = tidy(() =>
    interpolate(tensor(img.data, [1, 3, img.height, img.width], { dtype: 'uint8' }).float(), [height, width], 'bilinear', false)
      .add(0.5)
      .floor()
      .clamp(0, 255)
      .to('uint8')
      .toBytes(),
  );
  return { height, width, data, grey: img.grey };
}

export interface ImageFolderOptions {
  /**
   * Common size every image is resized to: S (S x S) or [height, width]. Default: the size of
   * the first image read (train, then val, then test; classes and files in sorted order), so a
   * folder of equal-sized images is kept as it is.
   */
  size?: number | readonly [number, number];
  /** Task name (default: the folder's name). */
  name?: string;
  /** With the flat layout (no train/val/test subfolders), the split the images go to (default 'test'). */
  flatSplit?: Split;
}

const isImageFile = (f: string): boolean => !f.startsWith('.') && IMAGE_EXTENSIONS.includes(path.extname(f).toLowerCase());

function subdirs(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new UserError(`${dir}: cannot read image folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return names.filter((n) => !n.startsWith('.') && statSync(path.join(dir, n)).isDirectory()).sort();
}

/** Image files of each class folder under `root`, sorted by name. */
function listClasses(root: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const c of subdirs(root)) {
    const files = readdirSync(path.join(root, c)).filter(isImageFile).sort();
    out.set(c, files.map((f) => path.join(root, c, f)));
  }
  return out;
}

/**
 * Loads a directory in torchvision's ImageFolder layout as a TaskData (the form loadMedMnist
 * returns), so image files can be used wherever a MedMNIST task can:
 * - split layout: `dir/{train,val,test}/<class>/<image>` (every subfolder of dir is one of
 *   train/val/test; a missing split is empty);
 * - flat layout: `dir/<class>/<image>`; every image goes to `flatSplit` (default 'test') and the
 *   other splits are empty.
 * Class names are the class folder names, sorted (label i = i-th name), over all splits. Files
 * with a .png/.jpg/.jpeg extension are read (others and hidden files are ignored); every image is
 * resized to the common size (see ImageFolderOptions.size) with bilinear interpolation.
 * `sourceChannels` is 1 when every image is grey, else 3. The task type is 'binary-class' for two
 * classes and 'multi-class' otherwise.
 */
export function loadImageFolder(dir: string, opts: ImageFolderOptions = {}): TaskData {
  const top = subdirs(dir);
  if (top.length === 0) throw new UserError(`${dir}: no class folders (expected ImageFolder layout: ${dir}/<class>/<image>)`);
  const splitLayout = top.every((d) => (SPLITS as readonly string[]).includes(d));
  const perSplit = new Map<Split, Map<string, string[]>>();
  if (splitLayout) for (const s of top as Split[]) perSplit.set(s, listClasses(path.join(dir, s)));
  else perSplit.set(opts.flatSplit ?? 'test', listClasses(dir));

  const classNames = [...new Set([...perSplit.values()].flatMap((m) => [...m.keys()]))].sort();
  if (classNames.length === 0) throw new UserError(`${dir}: no class folders under ${top.map((s) => `${s}/`).join(', ')}`);
  if (!splitLayout) {
    const empty = classNames.filter((c) => perSplit.get(opts.flatSplit ?? 'test')!.get(c)!.length === 0);
    if (empty.length) throw new UserError(`${dir}: class folder${empty.length > 1 ? 's' : ''} ${empty.join(', ')} hold${empty.length > 1 ? '' : 's'} no PNG or JPEG image`);
  }
  const total = [...perSplit.values()].reduce((s, m) => s + [...m.values()].reduce((a, f) => a + f.length, 0), 0);
  if (total === 0) throw new UserError(`${dir}: no PNG or JPEG images found`);

  let height = 0;
  let width = 0;
  if (opts.size !== undefined) {
    [height, width] = typeof opts.size === 'number' ? [opts.size, opts.size] : opts.size;
    if (!(Number.isInteger(height) && height >= 1 && Number.isInteger(width) && width >= 1)) {
      throw new UserError(`image folder size must be positive integers, got ${String(opts.size)}`);
    }
  }
  let allGrey = true;
  const build = (s: Split): ImageSplit => {
    const byClass = perSplit.get(s);
    const files: [string, number][] = [];
    if (byClass) for (const [c, fs] of byClass) for (const f of fs) files.push([f, classNames.indexOf(c)]);
    const images: Uint8Array[] = [];
    for (const [f] of files) {
      let img = readImage(f);
      if (height === 0) [height, width] = [img.height, img.width];
      img = resizeImage(img, height, width);
      allGrey &&= img.grey;
      images.push(img.data);
    }
    const out = new Uint8Array(files.length * 3 * height * width);
    images.forEach((d, i) => out.set(d, i * d.length));
    return { n: files.length, channels: 3, height, width, images: out, labels: Int32Array.from(files, ([, l]) => l) };
  };
  // Decode the split holding the first image first, so the default size is well defined; an
  // empty split gets the common size too.
  const order: Split[] = [...SPLITS].sort((a, b) => Number(perSplit.has(b)) - Number(perSplit.has(a)));
  const built = new Map(order.map((s) => [s, build(s)] as const));
  const splits = Object.fromEntries(SPLITS.map((s) => [s, { ...built.get(s)!, height, width }])) as Record<Split, ImageSplit>;
  return {
    name: opts.name ?? path.basename(path.resolve(dir)),
    classNames,
    task: classNames.length === 2 ? 'binary-class' : 'multi-class',
    sourceChannels: allGrey ? 1 : 3,
    splits,
  };
}
