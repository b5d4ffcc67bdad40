// Streaming an npz (src/data/npz.ts openNpzFile, zip.ts memberChunks, medmnist.ts medmnistStream):
// a member's rows, stored or deflated, equal the whole-read array; a truncated or corrupt member is
// one line; a MedMNIST file streamed gives loadMedMnist's rows; and `lorkd pack` of an npz keeps
// its peak memory flat in the number of rows (a child process, 5x the rows).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { zipSync } from 'fflate';
import { UserError } from '../src/tensor/index.js';
import { openNpzFile, parseNpz } from '../src/data/npz.js';
import { loadMedMnist, medmnistStream } from '../src/data/medmnist.js';
import { SPLITS } from '../src/data/dataset.js';
import { openPack } from '../src/pack/index.js';
import { npy, writeTaskNpz } from './helpers/pipeline.js';
import { HAVE_TIME, lorkdMeasured } from './helpers/hostile.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-npz-stream-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const isOneLine = (re: RegExp) => (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n');

/** A MedMNIST-format npz of n (side x side x 3) images; smooth pixels (they deflate well), labels k % 3. */
function bigNpz(file: string, n: number, side: number, level: 0 | 6): void {
  const members: Record<string, Uint8Array> = {};
  for (const s of SPLITS) {
    const m = s === 'train' ? n : 6;
    const px = new Uint8Array(m * side * side * 3);
    for (let i = 0; i < px.length; i++) px[i] = (i % 251) ^ ((i / 7919) & 255);
    members[`${s}_images.npy`] = npy('|u1', [m, side, side, 3], px);
    members[`${s}_labels.npy`] = npy('|u1', [m, 1], Uint8Array.from({ length: m }, (_, k) => k % 3));
  }
  writeFileSync(file, zipSync(members, { level }));
}

async function collect(g: AsyncGenerator<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const r of g) out.push(r);
  return out;
}

test('streamed rows equal the whole-read array, stored and deflated', async () => {
  for (const level of [0, 6] as const) {
    const f = path.join(dir, `l${level}.npz`);
    bigNpz(f, 40, 20, level);
    const whole = parseNpz(readFileSync(f), f);
    const npz = openNpzFile(f);
    try {
      for (const k of ['train_images', 'val_images']) {
        const ref = whole.get(k);
        assert.deepEqual(npz.header(k).shape, ref.shape);
        const rows = await collect(npz.rows(k));
        assert.equal(rows.length, ref.shape[0]);
        assert.ok(Buffer.concat(rows).equals(Buffer.from(ref.data as Uint8Array)), `level ${level}: ${k} differs`);
      }
      assert.deepEqual(Array.from(npz.get('train_labels').data as Uint8Array), Array.from(whole.get('train_labels').data as Uint8Array));
      assert.throws(() => npz.header('nope'), isOneLine(/no array 'nope' in the archive/));
    } finally {
      npz.close();
    }
  }
});

test('a truncated or corrupt streamed member is one line', async () => {
  const f = path.join(dir, 'bad.npz');
  bigNpz(f, 400, 40, 6);
  const bytes = readFileSync(f);
  // Flipped bytes in the middle of the deflated train images (after the .npy header): corrupt
  // deflate data, or a CRC mismatch, found while streaming.
  const lh = bytes.indexOf(Buffer.from('train_images.npy')) - 30;
  const start = lh + 30 + bytes.readUInt16LE(lh + 26) + bytes.readUInt16LE(lh + 28);
  const size = bytes.readUInt32LE(lh + 18);
  assert.ok(size > 8192, `the member is ${size} bytes deflated: its header is read apart from the corruption`);
  const at = start + size - (size >> 2);
  const flipped = Buffer.from(bytes);
  for (let i = at; i < at + 64; i += 3) flipped[i] ^= 0x5a;
  writeFileSync(f, flipped);
  const npz = openNpzFile(f);
  try {
    await assert.rejects(collect(npz.rows('train_images')), isOneLine(/bad\.npz: (corrupt npz|member 'train_images\.npy' (is corrupt|holds|inflates)|.*truncated)/));
  } finally {
    npz.close();
  }
  writeFileSync(f, bytes.subarray(0, bytes.length >> 1));
  assert.throws(() => openNpzFile(f), isOneLine(/not a valid npz \(zip\) archive, or truncated/));
});

test('a MedMNIST npz streamed gives the rows and labels loadMedMnist holds (grey and RGB)', async () => {
  for (const rgb of [false, true]) {
    const f = path.join(dir, `m${rgb ? 3 : 1}.npz`);
    writeTaskNpz(f, { classes: 3, sizes: { train: 11, val: 4, test: 5 }, rgb, seed: 3 });
    const mem = loadMedMnist(f);
    const st = medmnistStream(f);
    try {
      assert.equal(st.data.sourceChannels, mem.sourceChannels);
      assert.deepEqual(st.data.classNames, mem.classNames);
      for (const s of SPLITS) {
        assert.equal(st.data.splits[s].images.length, 0, 'no pixels held');
        assert.deepEqual(Array.from(st.data.splits[s].labels), Array.from(mem.splits[s].labels));
        const rows = await collect(st.rows(s));
        assert.ok(Buffer.concat(rows).equals(Buffer.from(mem.splits[s].images)), `${s} rows differ`);
      }
    } finally {
      st.close();
    }
  }
});

test('lorkd pack of an npz: peak RSS flat in the rows (500 vs 2500 rows of 128 px), the pixels of the whole read', { skip: HAVE_TIME ? false : '/usr/bin/time is missing', timeout: 300_000 }, async () => {
  const side = 128;
  const run = (n: number): { rss: number; out: string; file: string } => {
    const file = path.join(dir, `big${n}.npz`);
    bigNpz(file, n, side, 6);
    const out = path.join(dir, `pack${n}`);
    const r = lorkdMeasured(['pack', file, '--out', out, '--size', String(side), '--threads', '2', '--shard-mib', '8', '--json'], {}, 240_000);
    assert.equal(r.status, 0, r.lines.join('\n'));
    assert.equal(JSON.parse(r.stdout).images, n + 12);
    return { rss: r.maxRssMiB, out, file };
  };
  const small = run(500);
  const large = run(2500);
  const extraMiB = (2000 * side * side * 3) / 2 ** 20; // the extra rows' pixels: 94 MiB, held 2-3 times by a whole read (the npz, its array, the CHW copy)
  assert.ok(large.rss - small.rss < 50, `peak RSS ${small.rss.toFixed(0)} MiB for 500 rows, ${large.rss.toFixed(0)} MiB for 2500 (the extra pixels are ${extraMiB.toFixed(0)} MiB)`);
  const mem = loadMedMnist(large.file);
  const p = openPack(large.out);
  const per = 3 * side * side;
  for (const i of [0, 1234, 2499]) {
    assert.ok(Buffer.from((await p.image(0, 'train', i)).data).equals(Buffer.from(mem.splits.train.images.subarray(i * per, (i + 1) * per))), `row ${i} differs`);
  }
});
