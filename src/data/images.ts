// Image files (PNG, JPEG, DICOM; decoding in image-decode.ts) read into the data layer's uint8
// CHW 3-channel form, resized, and ImageFolder-layout directories loaded as a TaskData (like a
// MedMNIST subset).
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { tensor, interpolate, tidy } from '../tensor/index.js';
import { UserError } from '../tensor/errors.js';
import { readRegular } from '../io/read.js';
import { type Image, IMAGE_EXTENSIONS, decodeImage } from './image-decode.js';
import { type ImageSplit, type Split, SPLITS, type TaskData } from './dataset.js';

export { type Image, IMAGE_EXTENSIONS, decodeImage } from './image-decode.js';

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

/** The files of an ImageFolder-layout directory, without reading any image (see loadImageFolder). */
export interface ImageFolderListing {
  /** Class folder names, sorted (label i = i-th name), over all splits. */
  classNames: string[];
  /** True for the split layout (train/ val/ test/), false for the flat one. */
  splitLayout: boolean;
  /** Each split's [file, label] pairs, by class folder then file name (only the splits present). */
  files: Map<Split, [string, number][]>;
}

/**
 * Lists an ImageFolder-layout directory (see loadImageFolder): class names and each split's files
 * with their labels; with the flat layout every file goes to `flatSplit`. Refuses a folder with no
 * class folders or no images, and (flat layout) an empty class folder.
 */
export function listImageFolder(dir: string, flatSplit: Split = 'test'): ImageFolderListing {
  const top = subdirs(dir);
  if (top.length === 0) throw new UserError(`${dir}: no class folders (expected ImageFolder layout: ${dir}/<class>/<image>)`);
  const splitLayout = top.every((d) => (SPLITS as readonly string[]).includes(d));
  const perSplit = new Map<Split, Map<string, string[]>>();
  if (splitLayout) for (const s of top as Split[]) perSplit.set(s, listClasses(path.join(dir, s)));
  else perSplit.set(flatSplit, listClasses(dir));

  const classNames = [...new Set([...perSplit.values()].flatMap((m) => [...m.keys()]))].sort();
  if (classNames.length === 0) throw new UserError(`${dir}: no class folders under ${top.map((s) => `${s}/`).join(', ')}`);
  if (!splitLayout) {
    const empty = classNames.filter((c) => perSplit.get(flatSplit)!.get(c)!.length === 0);
    if (empty.length) throw new UserError(`${dir}: class folder${empty.length > 1 ? 's' : ''} ${empty.join(', ')} hold${empty.length > 1 ? '' : 's'} no PNG or JPEG image`);
  }
  const total = [...perSplit.values()].reduce((s, m) => s + [...m.values()].reduce((a, f) => a + f.length, 0), 0);
  if (total === 0) throw new UserError(`${dir}: no PNG or JPEG images found`);
  const files = new Map<Split, [string, number][]>();
  for (const [s, byClass] of perSplit) {
    const list: [string, number][] = [];
    for (const [c, fs] of byClass) for (const f of fs) list.push([f, classNames.indexOf(c)]);
    files.set(s, list);
  }
  return { classNames, splitLayout, files };
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
  const { classNames, files: perSplit } = listImageFolder(dir, opts.flatSplit ?? 'test');
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
    const files = perSplit.get(s) ?? [];
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
