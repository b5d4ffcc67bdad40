// Hostile input files through the CLI: PNG/JPEG files that claim more than they hold (or hold more
// than they claim), truncated images, zip bombs and lying .npz members. Each must end in exit 2
// with one stderr line, within seconds, at a bounded peak memory, and write nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import jpeg from 'jpeg-js';
import { npy, writeTaskNpz } from './helpers/pipeline.js';
import { HAVE_TIME, lorkdMeasured, expectOneLine, craftPng, pngRows, craftZip } from './helpers/hostile.js';
import { decodeImage } from '../src/data/images.js';
import { inflatedSize } from '../src/data/png-header.js';
import { UserError } from '../src/tensor/errors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-hostile-in-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const GOOD = path.join(dir, 'good.npz');
/** Peak RSS of a lorkd child that only parses its options and fails at once (measured in before()). */
let baselineMiB = NaN;

before(() => {
  writeTaskNpz(GOOD, { classes: 2, sizes: { train: 8, val: 4, test: 4 }, seed: 1 });
  baselineMiB = lorkdMeasured(['foundation', '--tasks', path.join(dir, 'absent.npz'), '--quiet', '--out', path.join(dir, 'never')]).maxRssMiB;
});

/** An ImageFolder task (flat layout) holding `file` as class a's only image and a small good image as class b's. */
function folderWith(name: string, bytes: Uint8Array): string {
  const root = path.join(dir, name);
  mkdirSync(path.join(root, 'a'), { recursive: true });
  mkdirSync(path.join(root, 'b'), { recursive: true });
  writeFileSync(path.join(root, 'a', `${name}.png`), bytes);
  writeFileSync(path.join(root, 'b', 'ok.png'), craftPng(8, 8, pngRows(8, 8, 7)));
  return root;
}

/** Runs `lorkd foundation --tasks <task>` and checks the contract, time and memory; returns the line. */
function refuse(task: string, re: RegExp, env: Record<string, string> = {}): string {
  const out = path.join(dir, `out-${path.basename(task)}`);
  const r = lorkdMeasured(['foundation', '--tasks', task, '--input', '16', '--quiet', '--out', out], env);
  const line = expectOneLine(r, re);
  assert.ok(r.seconds < 20, `took ${r.seconds} s`);
  if (HAVE_TIME) assert.ok(r.maxRssMiB < baselineMiB + 150, `peak RSS ${r.maxRssMiB.toFixed(0)} MiB, baseline ${baselineMiB.toFixed(0)} MiB`);
  console.log(`# ${path.basename(task)}: refused in ${r.seconds.toFixed(1)} s, peak RSS ${r.maxRssMiB.toFixed(0)} MiB (baseline ${baselineMiB.toFixed(0)} MiB)`);
  assert.equal(existsSync(out), false, 'no run directory is created');
  return line;
}

test('the decoder and the header agree on the inflated size (formula written out for RGB 8-bit)', () => {
  for (const [w, h] of [[1, 1], [7, 3], [64, 64]] as const) {
    assert.equal(inflatedSize({ width: w, height: h, bitDepth: 8, colorType: 2, interlaced: false }), h * (1 + 3 * w));
    // Adam7 pass sizes, counted pixel by pixel.
    const passes = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
    let want = 0;
    for (const [x0, y0, dx, dy] of passes) {
      let pw = 0;
      let ph = 0;
      for (let x = x0!; x < w; x += dx!) pw++;
      for (let y = y0!; y < h; y += dy!) ph++;
      if (pw && ph) want += ph * (1 + 3 * pw);
    }
    assert.equal(inflatedSize({ width: w, height: h, bitDepth: 8, colorType: 2, interlaced: true }), want);
  }
  // A well-formed PNG decodes to the rows it holds.
  const img = decodeImage(craftPng(5, 4, pngRows(5, 4, 9)), 'ok.png');
  assert.deepEqual([img.width, img.height, img.data[0], img.data[59]], [5, 4, 9, 9]);
});

test('PNG whose header claims 100000 x 100000 pixels: refused from the header, at once', () => {
  const line = refuse(folderWith('huge', craftPng(100_000, 100_000, pngRows(1, 1))), /huge\.png: a 100000x100000 PNG .*over the limit .*LORKD_MAX_IMAGE_PIXELS/);
  assert.match(line, /limit 67108864 pixels/);
  // The limit can be raised (here lowered) by its environment variable.
  process.env.LORKD_MAX_IMAGE_PIXELS = '100';
  try {
    assert.throws(() => decodeImage(craftPng(64, 64, pngRows(64, 64)), 'small.png'), /small\.png: a 64x64 PNG \(4096 pixels\): over the limit \(limit 100 pixels/);
  } finally {
    delete process.env.LORKD_MAX_IMAGE_PIXELS;
  }
});

test('PNG bomb: a 64x64 header over 64 MiB of deflated zeros stops at the size the header implies', () => {
  const bomb = craftPng(64, 64, pngRows(64, 64 * 1024 * 1024 / (1 + 3 * 64)));
  assert.ok(bomb.length < 200_000, `bomb is ${bomb.length} bytes`);
  refuse(folderWith('bomb', bomb), /bomb\.png: corrupt or unsupported PNG \(its pixel data inflates beyond the 12352 bytes a 64x64 image holds\)/);
});

test('PNG with missing rows: the same one-line error every time (no uninitialised pixels)', () => {
  const cut = folderWith('rows', craftPng(32, 32, pngRows(32, 16)));
  refuse(cut, /rows\.png: .*truncated: the pixel data holds 1552 of the 3104 bytes a 32x32 image needs, rows are missing/);
  const again = () => {
    try {
      decodeImage(craftPng(32, 32, pngRows(32, 16)), 'rows.png');
    } catch (e) {
      return (e as Error).message;
    }
    return 'decoded';
  };
  assert.equal(again(), again());
  // In-process: a cut file and a file without IEND are refused too.
  const full = craftPng(16, 16, pngRows(16, 16, 3));
  for (const bytes of [full.subarray(0, full.length - 20), craftPng(16, 16, pngRows(16, 16), false)]) {
    assert.throws(() => decodeImage(bytes, 'cut.png'), (e: unknown) => e instanceof UserError && /^cut\.png: corrupt or unsupported PNG \(truncated/.test(e.message));
  }
});

test('JPEG: the pixel limit is read from the frame header; a cut file is refused', () => {
  const jpg = jpeg.encode({ width: 40, height: 30, data: new Uint8Array(40 * 30 * 4).fill(128) }, 90).data;
  assert.deepEqual([decodeImage(jpg, 'ok.jpg').width, decodeImage(jpg, 'ok.jpg').height], [40, 30]);
  process.env.LORKD_MAX_IMAGE_PIXELS = '1000';
  try {
    assert.throws(() => decodeImage(jpg, 'big.jpg'), (e: unknown) => e instanceof UserError && /^big\.jpg: a 40x30 JPEG \(1200 pixels\): over the limit \(limit 1000 pixels/.test(e.message));
  } finally {
    delete process.env.LORKD_MAX_IMAGE_PIXELS;
  }
  assert.throws(() => decodeImage(jpg.subarray(0, jpg.length - 40), 'cut.jpg'), (e: unknown) => e instanceof UserError && /^cut\.jpg: corrupt or unsupported JPEG \(truncated/.test(e.message));
});

const zeros = (n: number) => new Uint8Array(n);
/** A MedMNIST-format npz whose train_images member is `images` (other members valid and small). */
function npzWith(file: string, images: { data: Uint8Array; claimedSize?: number }): string {
  const lab = (n: number) => npy('|u1', [n, 1], Uint8Array.from({ length: n }, (_, i) => i % 2));
  const img = (n: number) => npy('|u1', [n, 28, 28], zeros(n * 784));
  writeFileSync(file, craftZip([
    { name: 'train_images.npy', ...images },
    { name: 'train_labels.npy', data: lab(4) },
    { name: 'val_images.npy', data: img(4) }, { name: 'val_labels.npy', data: lab(4) },
    { name: 'test_images.npy', data: img(4) }, { name: 'test_labels.npy', data: lab(4) },
  ]));
  return file;
}

test('zip bomb: a member stating 3 KiB (as its .npy header) that inflates to 64 MiB stops at the stated size', () => {
  const data = npy('|u1', [4, 28, 28], zeros(64 * 1024 * 1024));
  const stated = data.length - 64 * 1024 * 1024 + 4 * 784;
  const bomb = npzWith(path.join(dir, 'bomb.npz'), { data, claimedSize: stated });
  refuse(bomb, new RegExp(`bomb\\.npz: member 'train_images\\.npy' inflates beyond its stated size of ${stated} bytes`));
});

test('npz over the unpacked-size limit: refused from the zip directory, before inflating', () => {
  const big = npzWith(path.join(dir, 'big.npz'), { data: npy('|u1', [40, 28, 28], zeros(40 * 784)) });
  const line = refuse(big, /big\.npz: the archive's members unpack to \d+ bytes: over the limit \(limit 16\.00 KiB bytes unpacked from one \.npz; set LORKD_MAX_NPZ_BYTES/, { LORKD_MAX_NPZ_BYTES: '16K' });
  assert.ok(!/inflat/.test(line));
});

test('npz member whose .npy header claims another size than the zip directory', () => {
  // Header: 1000000 x 28 x 28 images; the member (and the directory) hold 4 of them.
  const head = npy('|u1', [1_000_000, 28, 28], new Uint8Array(0));
  const data = new Uint8Array(head.length + 4 * 784);
  data.set(head);
  const lying = npzWith(path.join(dir, 'lying.npz'), { data });
  refuse(lying, /lying\.npz: member 'train_images\.npy': its \.npy header claims shape \[1000000, 28, 28\] uint8 \(\d+ bytes\), the archive states \d+ bytes/);
});
