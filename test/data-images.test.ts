// Image files: PNG (RGB, RGBA, grey, grey+alpha, 16-bit) and JPEG decoding to CHW RGB bytes,
// refusal of corrupt/unsupported data, bilinear resizing against a hand-written reference, and
// ImageFolder directories (flat and train/val/test layouts) loaded as TaskData.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PNG, type ColorType } from 'pngjs';
import jpeg from 'jpeg-js';
import { UserError, memory } from '../src/tensor/index.js';
import { decodeImage, readImage, resizeImage, loadImageFolder, type Image } from '../src/data/images.js';
import { lcg } from './helpers/random.js';
import { PYTHON, runPython } from './helpers/python.js';
import { spawnSync } from 'node:child_process';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-img-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const isUserError = (re: RegExp) => (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n');

/** Random bytes 0..255. */
const randomBytes = (n: number, seed: number): Uint8Array => {
  const r = lcg(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
};

/** Encodes interleaved samples (8-bit bytes, or 16-bit values) as a PNG of the given colour type. */
function png(width: number, height: number, samples: Uint8Array | Uint16Array, colorType: ColorType): Buffer {
  const bitDepth = samples instanceof Uint16Array ? 16 : 8;
  // pngjs reads 16-bit input as native-endian Uint16 over the whole buffer, so give it an exact one.
  const data = bitDepth === 16 ? Buffer.from(samples.slice().buffer) : Buffer.from(samples);
  return PNG.sync.write({ width, height, data } as PNG, {
    colorType,
    inputColorType: colorType,
    inputHasAlpha: colorType === 4 || colorType === 6,
    bitDepth,
  });
}

/** Interleaved (h, w, c) -> planar (3, h, w) with grey repeated; the first 3 (or 1) channels used. */
function planarOf(src: ArrayLike<number>, hw: number, c: number, map: (v: number) => number = (v) => v): number[] {
  const out = new Array<number>(3 * hw);
  for (let p = 0; p < hw; p++) {
    for (let k = 0; k < 3; k++) out[k * hw + p] = map(src[p * c + (c >= 3 ? k : 0)]!);
  }
  return out;
}

test('PNG: RGB, RGBA (alpha dropped, colours kept), grey and grey+alpha (3 equal channels)', () => {
  const [w, h] = [5, 3];
  const hw = w * h;
  const cases: [ColorType, number, boolean][] = [[2, 3, false], [6, 4, false], [0, 1, true], [4, 2, true]];
  for (const [colorType, c, grey] of cases) {
    const raw = randomBytes(hw * c, 10 + colorType);
    const img = decodeImage(png(w, h, raw, colorType), `t${colorType}.png`);
    assert.deepEqual([img.width, img.height, img.grey], [w, h, grey], `colour type ${colorType}`);
    assert.deepEqual(Array.from(img.data), planarOf(raw, hw, c), `colour type ${colorType}`);
  }
});

test('PNG 16-bit: samples scaled to 8 bits by rounding v * 255 / 65535', () => {
  const [w, h] = [4, 4];
  const hw = w * h;
  const r = lcg(3);
  for (const [colorType, c] of [[2, 3], [0, 1]] as const) {
    const raw = Uint16Array.from({ length: hw * c }, (_, i) => (i === 0 ? 65535 : i === c ? 128 : Math.floor(r() * 65536)));
    const img = decodeImage(png(w, h, raw, colorType));
    assert.equal(img.grey, colorType === 0);
    assert.deepEqual(Array.from(img.data), planarOf(raw, hw, c, (v) => Math.round((v * 255) / 65535)));
    assert.equal(img.data[0], 255);
    assert.equal(img.data[1], 0, '128 * 255 / 65535 rounds to 0');
  }
});

test('JPEG: RGB decodes close to the encoded image, channel planes in order', () => {
  const [w, h] = [16, 16];
  const rgba = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 4;
      rgba.set([x * 16, y * 16, 200, 255], o);
    }
  }
  const file = jpeg.encode({ width: w, height: h, data: rgba }, 100).data;
  const img = decodeImage(file, 'x.jpg');
  assert.deepEqual([img.width, img.height, img.grey], [w, h, false]);
  const want = planarOf(rgba, w * h, 4);
  let maxDiff = 0;
  for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(img.data[i]! - want[i]!));
  assert.ok(maxDiff <= 6, `max |decoded - original| = ${maxDiff}`);
  // The format is sniffed, not taken from the name.
  writeFileSync(path.join(dir, 'really-a-jpeg.png'), file);
  assert.deepEqual(readImage(path.join(dir, 'really-a-jpeg.png')).data, img.data);
});

const hasPil = spawnSync(PYTHON, ['-c', 'import PIL'], { stdio: 'ignore' }).status === 0;

test('JPEG: a greyscale (1-component) JPEG gives 3 equal channels', { skip: hasPil ? false : `${PYTHON} cannot import PIL` }, () => {
  const file = path.join(dir, 'grey.jpg');
  runPython(
    `import sys
from PIL import Image
im = Image.new('L', (12, 10))
im.putdata([(x * 20 + y * 3) % 256 for y in range(10) for x in range(12)])
im.save(sys.argv[1], quality=95)
assert Image.open(sys.argv[1]).mode == 'L'`,
    [file],
  );
  const img = readImage(file);
  assert.deepEqual([img.width, img.height, img.grey], [12, 10, true]);
  const hw = 120;
  for (let p = 0; p < hw; p++) {
    assert.equal(img.data[hw + p], img.data[p]);
    assert.equal(img.data[2 * hw + p], img.data[p]);
  }
  let maxDiff = 0;
  for (let p = 0; p < hw; p++) maxDiff = Math.max(maxDiff, Math.abs(img.data[p]! - (((p % 12) * 20 + Math.floor(p / 12) * 3) % 256)));
  assert.ok(maxDiff <= 40, `grey JPEG is far from its source: ${maxDiff}`);
});

test('corrupt and unsupported files are one-line UserErrors', () => {
  const good = png(4, 4, randomBytes(48, 1), 2);
  assert.throws(() => decodeImage(good.subarray(0, 40), 'cut.png'), isUserError(/^cut\.png: corrupt or unsupported PNG/));
  const badCrc = Buffer.from(good);
  badCrc[good.length - 20] ^= 0xff; // inside the IDAT chunk
  assert.throws(() => decodeImage(badCrc, 'crc.png'), isUserError(/^crc\.png: corrupt or unsupported PNG/));
  const jpg = jpeg.encode({ width: 8, height: 8, data: randomBytes(256, 2) }, 90).data;
  assert.throws(() => decodeImage(jpg.subarray(0, jpg.length - 8), 'cut.jpg'), isUserError(/^cut\.jpg: corrupt or unsupported JPEG/));
  assert.throws(() => decodeImage(Buffer.from('GIF89a....'), 'a.gif'), isUserError(/^a\.gif: not a PNG or JPEG image/));
  assert.throws(() => decodeImage(new Uint8Array(0), 'empty.png'), isUserError(/not a PNG or JPEG image/));
  assert.throws(() => readImage(path.join(dir, 'missing.png')), isUserError(/missing\.png: cannot read image \(ENOENT\)/));
});

/** torch's bilinear resize (align_corners=False, no antialias) written out, in float64, on one plane. */
function bilinearRef(src: Uint8Array, h: number, w: number, oh: number, ow: number): number[] {
  const coords = (o: number, inSize: number, outSize: number): [number, number, number] => {
    const s = Math.max(0, ((o + 0.5) * inSize) / outSize - 0.5);
    const i0 = Math.min(Math.floor(s), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    return [i0, i1, s - i0];
  };
  const out: number[] = [];
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < oh; y++) {
      const [y0, y1, ly] = coords(y, h, oh);
      for (let x = 0; x < ow; x++) {
        const [x0, x1, lx] = coords(x, w, ow);
        const at = (yy: number, xx: number) => src[c * h * w + yy * w + xx]!;
        out.push((1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1)));
      }
    }
  }
  return out;
}

test('resizeImage: bilinear (align_corners=False) rounded half up to uint8, up and down; same size is a no-op', () => {
  const img: Image = { width: 7, height: 5, data: randomBytes(3 * 35, 4), grey: false };
  const live = memory().liveTensors;
  for (const [oh, ow] of [[10, 14], [3, 4], [5, 9], [8, 8]] as const) {
    const r = resizeImage(img, oh, ow);
    assert.deepEqual([r.height, r.width, r.data.length], [oh, ow, 3 * oh * ow]);
    const ref = bilinearRef(img.data, 5, 7, oh, ow);
    let off = 0;
    for (let i = 0; i < ref.length; i++) {
      const d = Math.abs(r.data[i]! - ref[i]!);
      assert.ok(d <= 0.5 + 1e-3, `${oh}x${ow} [${i}]: ${r.data[i]} vs ${ref[i]}`);
      if (r.data[i] !== Math.floor(ref[i]! + 0.5)) off++;
    }
    assert.ok(off <= 2, `${off} values differ from round(reference) (only float32 rounding at .5 may)`);
  }
  assert.equal(resizeImage(img, 5, 7), img);
  assert.equal(memory().liveTensors, live, 'no tensors left alive');
  assert.throws(() => resizeImage(img, 0, 3), isUserError(/positive integers/));
});

/** Writes a PNG (RGB or grey) of size h x w with pixel bytes from `seed`; returns its decoded image. */
function writePng(file: string, h: number, w: number, seed: number, grey = false): Image {
  const bytes = png(w, h, randomBytes(h * w * (grey ? 1 : 3), seed), grey ? 0 : 2);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, bytes);
  return decodeImage(bytes);
}

test('loadImageFolder, flat layout: sorted classes, labels, bytes; other files ignored; all images in test', () => {
  const root = path.join(dir, 'flat');
  const a1 = writePng(path.join(root, 'benign', 'b.png'), 6, 5, 1, true);
  const a0 = writePng(path.join(root, 'benign', 'a.PNG'), 6, 5, 2, true);
  const c0 = writePng(path.join(root, 'malignant', 'x.png'), 6, 5, 3, true);
  writeFileSync(path.join(root, 'benign', 'notes.txt'), 'not an image');
  writeFileSync(path.join(root, 'benign', '.hidden.png'), 'not read');
  mkdirSync(path.join(root, '.cache'));
  const d = loadImageFolder(root);
  assert.equal(d.name, 'flat');
  assert.deepEqual(d.classNames, ['benign', 'malignant']);
  assert.equal(d.task, 'binary-class');
  assert.equal(d.sourceChannels, 1);
  const s = d.splits.test;
  assert.deepEqual([s.n, s.channels, s.height, s.width], [3, 3, 6, 5]);
  assert.deepEqual(Array.from(s.labels), [0, 0, 1]);
  assert.deepEqual(s.images, new Uint8Array(Buffer.concat([a0.data, a1.data, c0.data])));
  for (const sp of ['train', 'val'] as const) assert.deepEqual([d.splits[sp].n, d.splits[sp].height, d.splits[sp].width, d.splits[sp].images.length], [0, 6, 5, 0]);
  // flatSplit and name options.
  const t = loadImageFolder(root, { flatSplit: 'train', name: 'breast' });
  assert.equal(t.name, 'breast');
  assert.deepEqual([t.splits.train.n, t.splits.test.n], [3, 0]);
});

test('loadImageFolder: mixed sizes resized to the first image (or the given size); colour images make sourceChannels 3', () => {
  const root = path.join(dir, 'mixed');
  const a = writePng(path.join(root, 'a', '1.png'), 4, 6, 5);
  const b = writePng(path.join(root, 'b', '1.png'), 9, 7, 6, true);
  const rgba = new Uint8Array(8 * 8 * 4).fill(255);
  mkdirSync(path.join(root, 'c'));
  const jp = jpeg.encode({ width: 8, height: 8, data: rgba }, 95).data;
  writeFileSync(path.join(root, 'c', '1.jpeg'), jp);
  const d = loadImageFolder(root);
  assert.deepEqual(d.classNames, ['a', 'b', 'c']);
  assert.equal(d.task, 'multi-class');
  assert.equal(d.sourceChannels, 3);
  const s = d.splits.test;
  assert.deepEqual([s.n, s.height, s.width], [3, 4, 6]);
  const per = 3 * 4 * 6;
  assert.deepEqual(s.images.subarray(0, per), a.data);
  assert.deepEqual(s.images.subarray(per, 2 * per), resizeImage(b, 4, 6).data);
  assert.deepEqual(s.images.subarray(2 * per), resizeImage(decodeImage(jp), 4, 6).data);
  const e = loadImageFolder(root, { size: 5 });
  assert.deepEqual([e.splits.test.height, e.splits.test.width], [5, 5]);
  assert.deepEqual(e.splits.test.images.subarray(0, 75), resizeImage(a, 5, 5).data);
  const f = loadImageFolder(root, { size: [3, 2] });
  assert.deepEqual([f.splits.test.height, f.splits.test.width, f.splits.test.images.length], [3, 2, 3 * 18]);
});

test('loadImageFolder, split layout: train/val/test folders, class names over all splits', () => {
  const root = path.join(dir, 'splits');
  const tr = [writePng(path.join(root, 'train', 'cat', '0.png'), 4, 4, 7), writePng(path.join(root, 'train', 'dog', '0.png'), 4, 4, 8)];
  const te = writePng(path.join(root, 'test', 'eel', '0.png'), 4, 4, 9);
  const d = loadImageFolder(root);
  assert.deepEqual(d.classNames, ['cat', 'dog', 'eel']);
  assert.deepEqual([d.splits.train.n, d.splits.val.n, d.splits.test.n], [2, 0, 1]);
  assert.deepEqual(Array.from(d.splits.train.labels), [0, 1]);
  assert.deepEqual(Array.from(d.splits.test.labels), [2]);
  assert.deepEqual(d.splits.train.images, new Uint8Array(Buffer.concat(tr.map((i) => i.data))));
  assert.deepEqual(d.splits.test.images, te.data);
  assert.deepEqual([d.splits.val.height, d.splits.val.width], [4, 4]);
});

test('loadImageFolder refuses empty or missing folders in one line', () => {
  assert.throws(() => loadImageFolder(path.join(dir, 'absent')), isUserError(/absent: cannot read image folder \(ENOENT\)/));
  const empty = path.join(dir, 'empty');
  mkdirSync(empty);
  assert.throws(() => loadImageFolder(empty), isUserError(/no class folders/));
  const noImages = path.join(dir, 'noimg');
  mkdirSync(path.join(noImages, 'a'), { recursive: true });
  writePng(path.join(noImages, 'b', '0.png'), 2, 2, 1);
  assert.throws(() => loadImageFolder(noImages), isUserError(/class folder a holds no PNG or JPEG image/));
  const corrupt = path.join(dir, 'corrupt');
  mkdirSync(path.join(corrupt, 'a'), { recursive: true });
  writeFileSync(path.join(corrupt, 'a', 'x.png'), 'nope');
  assert.throws(() => loadImageFolder(corrupt), isUserError(/x\.png: not a PNG or JPEG image/));
  assert.throws(() => loadImageFolder(path.join(dir, 'flat'), { size: 0 }), isUserError(/size must be positive integers/));
});
