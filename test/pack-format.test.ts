// The pack format: records written by PackWriter read back by openPack (labels, sizes, bytes),
// shards rolled at shardBytes, damaged packs refused with one line naming the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PackWriter, openPack, encodeStored, decodeStored, recordBytes } from '../src/pack/index.js';
import type { Split } from '../src/data/dataset.js';

const tmp = (): string => mkdtempSync(path.join(tmpdir(), 'lorkd-pack-format-'));

/** A deterministic 3-plane image (grey when asked). */
function image(seed: number, h: number, w: number, grey: boolean) {
  const hw = h * w;
  const data = new Uint8Array(3 * hw);
  for (let p = 0; p < hw; p++) {
    const v = (p * 31 + seed * 17) & 255;
    data[p] = v;
    data[hw + p] = grey ? v : (v + 85) & 255;
    data[2 * hw + p] = grey ? v : (v * 3) & 255;
  }
  return { height: h, width: w, data, grey };
}

const base = (size: number) => ({
  format: 'lorkd-pack' as const, version: 1, storage: 'raw' as const, size,
  resize: { method: 'bilinear' as const, antialias: false as const, align_corners: false as const, fit: 'square' as const },
  seed: 0, split: { val: 0.1, test: 0.2 }, created: new Date(0).toISOString(),
});

async function writeSmall(dir: string, shardBytes: number) {
  const w = PackWriter.open(dir, 'fp', [{ labelsPerImage: 1 }, { labelsPerImage: 3 }], shardBytes);
  const want: { task: number; split: Split; labels: number[]; img: ReturnType<typeof image> }[] = [];
  const splits: Split[] = ['train', 'val', 'test'];
  for (let i = 0; i < 20; i++) {
    const task = i % 2;
    const split = splits[i % 3]!;
    const labels = task === 0 ? [i % 4] : [i & 1, (i >> 1) & 1, (i >> 2) & 1];
    const img = image(i, 6, 6, task === 0);
    w.add(task, split, Int32Array.from(labels), [{ bytes: await encodeStored(img, 'raw'), height: 6, width: 6, grey: img.grey }], i + 1);
    want.push({ task, split, labels, img });
  }
  w.advance(20);
  const m = w.finish({ ...base(6), tasks: [
    { name: 'a', classNames: ['0', '1', '2', '3'], task: 'multi-class', labelsPerImage: 1, source: 'a' },
    { name: 'b', classNames: ['x', 'y', 'z'], task: 'multi-label', labelsPerImage: 3, source: 'b' },
  ] });
  return { m, want };
}

test('pack format: written records read back with their labels and pixels; shards roll at shardBytes', async () => {
  const dir = tmp();
  const { m, want } = await writeSmall(dir, 250);
  // grey 6x6 = 36 bytes, colour 108: 250-byte shards hold at most a few images each
  assert.ok(m.shards.length > 3);
  for (const s of m.shards) assert.ok(s.bytes <= 250);
  assert.equal(m.tasks[0]!.channels, 1);
  assert.equal(m.tasks[1]!.channels, 3);
  const pack = openPack(dir);
  assert.equal(pack.count('a', 'train') + pack.count('a', 'val') + pack.count('a', 'test'), 10);
  const seen: Record<string, number> = {};
  for (const w of want) {
    const key = `${w.task}.${w.split}`;
    const i = (seen[key] = (seen[key] ?? -1) + 1);
    const r = pack.record(w.task, w.split, i);
    assert.deepEqual([...r.labels], w.labels);
    assert.equal(r.label, w.labels[0]);
    const img = await pack.image(w.task, w.split, i);
    assert.deepEqual(img.data, w.img.data);
    assert.equal(img.grey, w.img.grey);
  }
  assert.deepEqual([...pack.labels('a', 'train')], want.filter((w) => w.task === 0 && w.split === 'train').map((w) => w.labels[0]));
  assert.equal(readFileSync(path.join(dir, 'index', '1.train.idx')).length, pack.count('b', 'train') * recordBytes(3));
  await pack.verify();
  pack.close();
});

test('pack format: a truncated or corrupt shard is one line naming the shard', async () => {
  const dir = tmp();
  await writeSmall(dir, 250);
  const shard = path.join(dir, 'shards', '000001.shard');
  const bytes = readFileSync(shard);
  bytes[0] = bytes[0]! ^ 0xff;
  writeFileSync(shard, bytes);
  await assert.rejects(openPack(dir).verify(), (e: Error) => e.name === 'UserError' && e.message.includes(shard) && /corrupt/.test(e.message) && !e.message.includes('\n'));
  truncateSync(shard, 10);
  const pack = openPack(dir);
  const r = [0, 1, 2, 3, 4, 5].map((i) => { try { return pack.record('a', 'train', i); } catch { return null; } }).find((x) => x?.shard === 1)
    ?? [0, 1, 2].map((i) => pack.record('b', 'train', i)).find((x) => x.shard === 1)!;
  assert.throws(() => pack.readBytes(r), (e: Error) => e.name === 'UserError' && e.message.includes(shard) && /truncated/.test(e.message));
  await assert.rejects(openPack(dir).verify(), (e: Error) => e.message.includes(shard) && /truncated/.test(e.message));
});

test('pack format: an unfinished or foreign folder is refused in one line', () => {
  const dir = tmp();
  assert.throws(() => openPack(dir), /not a pack \(no manifest\.json\)/);
  PackWriter.open(dir, 'fp', [{ labelsPerImage: 1 }], 100);
  assert.throws(() => openPack(dir), /the pack is not finished/);
  assert.throws(() => PackWriter.open(dir, 'other', [{ labelsPerImage: 1 }], 100), /unfinished pack of other sources/);
  writeFileSync(path.join(dir, 'manifest.json'), '{"format":"x"}');
  assert.throws(() => openPack(dir), /not a pack manifest/);
});

test('pack format: decodeStored expands grey raw planes and round-trips JPEG within a tolerance', async () => {
  const grey = image(3, 16, 20, true);
  const back = decodeStored(await encodeStored(grey, 'raw'), 'raw', 16, 20);
  assert.deepEqual((await back).data, grey.data);
  const colour = { ...image(5, 16, 20, false) };
  // a smooth image: JPEG at quality 95 stays within a few levels
  for (let p = 0; p < colour.data.length; p++) colour.data[p] = (p % 320) >> 1;
  const j = await encodeStored(colour, 'jpeg', 95);
  assert.equal(j[0], 0xff);
  const d = await decodeStored(j, 'jpeg', 0, 0);
  assert.equal(d.height, 16);
  assert.equal(d.width, 20);
  let maxErr = 0;
  for (let p = 0; p < d.data.length; p++) maxErr = Math.max(maxErr, Math.abs(d.data[p]! - colour.data[p]!));
  assert.ok(maxErr <= 12, `max error ${maxErr}`);
  await assert.rejects(decodeStored(j.subarray(0, j.length >> 1), 'jpeg', 0, 0, 'shards/x.shard'), (e: Error) => e.name === 'UserError' && /shards\/x\.shard: corrupt JPEG/.test(e.message));
});
