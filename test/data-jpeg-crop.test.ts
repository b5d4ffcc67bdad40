// The JPEG-pack rows (src/data/jpeg-crop.ts, resample.ts, native/jpeg/crop.cc): the lorkd_jpeg addon
// and sharp + resample.ts give the same bytes (colour and grey, shrinking and enlarging crops,
// flips); both equal torchvision's resized_crop + hflip of a PIL image (optional, Debian's
// PyTorch); a corrupt JPEG is an error; the stream workers' batches do not depend on their number;
// a corrupt JPEG in a pack is one line naming its shard.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { jpegAddon, nativeJpegCrop, sharpJpegCrop } from '../src/data/jpeg-crop.js';
import { Rng } from '../src/data/rng.js';
import { randomResizedBox, type CropBox } from '../src/data/crop.js';
import { setNumThreads, UserError } from '../src/tensor/index.js';
import { loadTasks } from '../src/data/medmnist.js';
import { packTasks } from '../src/data/pack-tasks.js';
import { loadSuite, trainLoader } from '../src/experiments/data-options.js';
import { openPack } from '../src/pack/index.js';
import { writeTaskNpz } from './helpers/pipeline.js';
import { runPython, skipWithoutTorch } from './helpers/python.js';

setNumThreads(1);
const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-jpeg-crop-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A smooth random JPEG (w x h, 1 or 3 channels), so that resampling errors would show. */
async function jpeg(w: number, h: number, channels: 1 | 3, seed: number): Promise<Uint8Array> {
  const rng = Rng.from(seed, 'jpeg-crop-test');
  const px = new Uint8Array(w * h * channels);
  const f = Array.from({ length: 6 }, () => rng.float() * 0.3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < channels; c++) {
    px[(y * w + x) * channels + c] = Math.round(127.5 + 120 * Math.sin(f[c]! * x + f[c + 3]! * y + c) * Math.cos(0.05 * (x - y)));
  }
  const img = sharp(px, { raw: { width: w, height: h, channels } });
  return new Uint8Array(await (channels === 1 ? img.toColourspace('b-w') : img).jpeg({ quality: 92, chromaSubsampling: '4:4:4' }).toBuffer());
}

interface Case {
  bytes: Uint8Array;
  box: CropBox;
  out: number;
  flip: boolean;
}

/** Crops of both kinds: RandomResizedCrop boxes (mostly enlarged to `out`) and whole images shrunk. */
async function cases(): Promise<Case[]> {
  const all: Case[] = [];
  for (const [w, h, ch] of [[96, 80, 3], [75, 120, 1], [224, 224, 3]] as const) {
    const bytes = await jpeg(w, h, ch, w + h);
    const rng = Rng.from(w, 'boxes');
    for (let k = 0; k < 4; k++) all.push({ bytes, box: randomResizedBox(w, h, rng), out: 40 + 13 * k, flip: k % 2 === 1 });
    all.push({ bytes, box: { left: 3, top: 5, width: w - 9, height: h - 7 }, out: 17, flip: true });
    all.push({ bytes, box: { left: 0, top: 0, width: w, height: h }, out: Math.min(w, h), flip: false });
  }
  return all;
}

const run = async (c: Case, f: 'native' | 'sharp'): Promise<Uint8Array> => {
  const dst = new Uint8Array(3 * c.out * c.out + 5);
  if (f === 'native') nativeJpegCrop(jpegAddon()!, c.bytes, c.box, c.out, c.flip, dst, 5);
  else await sharpJpegCrop(c.bytes, c.box, c.out, c.flip, dst, 5);
  return dst.subarray(5);
};

test('the lorkd_jpeg addon and sharp + resample.ts give the same rows', { skip: jpegAddon() ? false : 'lorkd_jpeg is not built (no jpeglib.h)' }, async () => {
  for (const [k, c] of (await cases()).entries()) {
    const a = await run(c, 'native');
    const b = await run(c, 'sharp');
    assert.ok(Buffer.from(a).equals(Buffer.from(b)), `case ${k} (${JSON.stringify(c.box)} -> ${c.out}) differs`);
  }
});

test("rows equal torchvision's resized_crop + hflip of the PIL image (Debian's PyTorch)", { skip: skipWithoutTorch(), timeout: 120_000 }, async () => {
  const all = await cases();
  const files = all.map((c, k) => {
    const f = path.join(dir, `c${k}.jpg`);
    writeFileSync(f, c.bytes);
    return { file: f, out: path.join(dir, `c${k}.raw`), box: c.box, size: c.out, flip: c.flip };
  });
  runPython(
    `import json, sys
from PIL import Image
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode
for c in json.loads(sys.argv[1]):
    b = c['box']
    im = F.resized_crop(Image.open(c['file']).convert('RGB'), b['top'], b['left'], b['height'], b['width'], [c['size'], c['size']], InterpolationMode.BILINEAR)
    if c['flip']: im = F.hflip(im)
    planes = im.split()
    open(c['out'], 'wb').write(b''.join(p.tobytes() for p in planes))`,
    [JSON.stringify(files)],
  );
  for (const [k, c] of all.entries()) {
    const ref = readFileSync(files[k]!.out);
    for (const f of [jpegAddon() ? 'native' : null, 'sharp'] as const) {
      if (!f) continue;
      const got = await run(c, f);
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - ref[i]!));
      assert.equal(worst, 0, `${f}: case ${k} (${JSON.stringify(c.box)} -> ${c.out}) differs from PIL by up to ${worst}`);
    }
  }
});

test('a corrupt or truncated JPEG is an error, never a row of garbage', { skip: jpegAddon() ? false : 'lorkd_jpeg is not built' }, async () => {
  const good = await jpeg(64, 64, 3, 1);
  const box = { left: 0, top: 0, width: 64, height: 64 };
  const dst = new Uint8Array(3 * 32 * 32);
  assert.throws(() => nativeJpegCrop(jpegAddon()!, good.subarray(0, good.length >> 1), box, 32, false, dst, 0), /premature|end|corrupt/i);
  assert.throws(() => nativeJpegCrop(jpegAddon()!, new Uint8Array(100).fill(7), box, 32, false, dst, 0), /JPEG/i);
  assert.throws(() => nativeJpegCrop(jpegAddon()!, good, { left: 10, top: 0, width: 64, height: 64 }, 32, false, dst, 0), /outside/);
  assert.throws(() => nativeJpegCrop(jpegAddon()!, good, box, 32, false, dst, 1), /does not fit/);
});

test('a JPEG pack streams the same batches with 1 and 3 workers; a corrupt JPEG is one line naming its shard', { timeout: 120_000 }, async () => {
  const A = path.join(dir, 'w3.npz');
  writeTaskNpz(A, { classes: 3, sizes: { train: 40, val: 6, test: 6 }, rgb: true, seed: 11 });
  const pack = path.join(dir, 'jpeg');
  await packTasks(pack, loadTasks([A]), { storage: 'jpeg', quality: 95 });
  const o = { tasks: [pack], input: 36, batch: 16, seed: 2 };
  const epoch = (threads: string): Uint8Array[] => {
    process.env.LORKD_STREAM_THREADS = threads;
    try {
      return [...trainLoader(loadSuite(o), o).epoch(1)].map((b) => {
        const x = b.images.contiguous().toBytes();
        b.dispose();
        return x;
      });
    } finally {
      delete process.env.LORKD_STREAM_THREADS;
    }
  };
  const one = epoch('1');
  const three = epoch('3');
  assert.equal(one.length, three.length);
  one.forEach((x, k) => assert.ok(Buffer.from(x).equals(Buffer.from(three[k]!)), `batch ${k} differs`));
  // Scribble over one record's entropy-coded data.
  const p = openPack(pack);
  const rec = p.record(0, 'train', 5);
  const shard = path.join(pack, p.manifest.shards[rec.shard]!.file);
  const bytes = readFileSync(shard);
  bytes.fill(0xff, rec.offset + Math.floor(rec.length / 2), rec.offset + rec.length - 2);
  writeFileSync(shard, bytes);
  assert.throws(() => epoch('2'), (e: Error) => e instanceof UserError && /000000\.shard \(image at \d+\): corrupt JPEG/.test(e.message) && !e.message.includes('\n'));
});
