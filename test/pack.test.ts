// lorkd pack end to end: a raw pack holds the in-memory task's pixels and labels (npz and image
// folders, resized the same way), JPEG within a tolerance with the shorter side S, bad files
// skipped and reported, a killed pack continued to the same bytes as an uninterrupted one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { packSources, openPack, type PackOptions, type Pack } from '../src/pack/index.js';
import { loadMedMnist } from '../src/data/medmnist.js';
import { loadImageTask } from '../src/data/image-folder.js';
import { type TaskData, SPLITS } from '../src/data/dataset.js';
import { Rng } from '../src/data/rng.js';
import { BIN, REPO, lorkdEnv } from './helpers/pipeline.js';
import { lorkdMeasured } from './helpers/hostile.js';
import { parseSplit } from '../src/cli/pack.js';

const tmp = (): string => mkdtempSync(path.join(tmpdir(), 'lorkd-pack-'));
const opts = (out: string, o: Partial<PackOptions> = {}): PackOptions => ({ out, storage: 'raw', size: 28, quality: 90, val: 0.1, test: 0.2, seed: 0, shardBytes: 64 * 1024, threads: 2, ...o });

/** Every image and label of `pack`'s task `t` equals the in-memory task's, row for row. */
async function assertSameAsMemory(pack: Pack, t: number, data: TaskData): Promise<void> {
  for (const s of SPLITS) {
    const want = data.splits[s];
    assert.equal(pack.count(t, s), want.n, `${data.name}/${s}: count`);
    assert.deepEqual(pack.labels(t, s), want.labels, `${data.name}/${s}: labels`);
    const per = 3 * want.height * want.width;
    for (let i = 0; i < want.n; i++) {
      const img = await pack.image(t, s, i);
      assert.equal(img.height, want.height);
      assert.deepEqual(img.data, want.images.subarray(i * per, (i + 1) * per), `${data.name}/${s} row ${i}`);
    }
  }
}

/** A small image folder (flat layout, 3 classes, images of various sizes, grey and colour; PNG, and JPEG unless `pngOnly`). */
async function imageFolder(root: string, n: number, pngOnly = false, seed = 0): Promise<void> {
  const rng = Rng.from(seed, 'pack-test-folder');
  for (let i = 0; i < n; i++) {
    const cls = ['cyst', 'normal', 'tumour'][i % 3]!;
    mkdirSync(path.join(root, cls), { recursive: true });
    const w = 20 + (rng.nextU32() % 30);
    const h = 20 + (rng.nextU32() % 30);
    const channels = i % 4 === 0 ? 1 : 3;
    const px = Buffer.alloc(w * h * channels);
    for (let p = 0; p < px.length; p++) px[p] = ((p % w) * 5 + Math.floor(p / w) * 3 + i * 11) & 255;
    const img = sharp(px, { raw: { width: w, height: h, channels } });
    const file = path.join(root, cls, `img${String(i).padStart(4, '0')}`);
    if (pngOnly || i % 2 === 0) await img.png().toFile(file + '.png');
    else await img.jpeg({ quality: 95 }).toFile(file + '.jpg');
  }
}

test('pack: a raw pack of npz tasks holds the in-memory pixels and labels; shards verify', async () => {
  const out = path.join(tmp(), 'p');
  const r = await packSources(['breastmnist', 'retinamnist'], opts(out));
  assert.ok(r.manifest);
  const pack = openPack(out);
  assert.equal(pack.manifest.tasks[0]!.channels, 1);
  assert.equal(pack.manifest.tasks[1]!.channels, 3);
  assert.ok(pack.manifest.shards.length > 10, 'small shards: several of them');
  await assertSameAsMemory(pack, 0, loadMedMnist('breastmnist'));
  await assertSameAsMemory(pack, 1, loadMedMnist('retinamnist'));
  await pack.verify();
  pack.close();
});

test('pack: an image folder split by seed and resized equals loadImageTask at that size', async () => {
  // PNG only: JPEG files are decoded by libjpeg-turbo in a pack and by jpeg-js in memory (a level or two apart)
  const root = path.join(tmp(), 'scans');
  await imageFolder(root, 45, true);
  const out = path.join(tmp(), 'p');
  await packSources([root], opts(out, { size: 24, seed: 3, val: 0.2, test: 0.2 }));
  const pack = openPack(out);
  await assertSameAsMemory(pack, 0, loadImageTask(root, { size: 24, splitSeed: 3, valSplit: 0.2, testSplit: 0.2 }));
  assert.equal(pack.manifest.tasks[0]!.name, 'scans');
  assert.deepEqual(pack.manifest.tasks[0]!.classNames, ['cyst', 'normal', 'tumour']);
});

test('pack: jpeg keeps the aspect with the shorter side S and decodes within a tolerance', async () => {
  const root = path.join(tmp(), 'scans');
  await imageFolder(root, 12);
  const out = path.join(tmp(), 'p');
  await packSources([root], opts(out, { storage: 'jpeg', size: 32, quality: 95 }));
  const pack = openPack(out);
  const mem = loadImageTask(root, { size: 32 });
  assert.equal(pack.manifest.resize.fit, 'shorter-side');
  for (const s of SPLITS) {
    for (let i = 0; i < pack.count(0, s); i++) {
      const rec = pack.record(0, s, i);
      assert.equal(Math.min(rec.height, rec.width), 32);
      const img = await pack.image(0, s, i);
      assert.deepEqual([img.height, img.width], [rec.height, rec.width]);
      assert.equal(rec.label, mem.splits[s].labels[i]);
    }
  }
});

test('pack: bad files are skipped, each reported in one line and counted in the manifest', async () => {
  const root = path.join(tmp(), 'scans');
  await imageFolder(root, 9);
  writeFileSync(path.join(root, 'cyst', 'broken.png'), Buffer.from('not a png at all'));
  const jpg = readFileSync(path.join(root, 'normal', readdirSync(path.join(root, 'normal')).find((f) => f.endsWith('.jpg'))!));
  writeFileSync(path.join(root, 'normal', 'cut.jpg'), jpg.subarray(0, jpg.length >> 1));
  const out = path.join(tmp(), 'p');
  const skipped: string[] = [];
  const r = await packSources([root], opts(out, { onSkip: (l) => skipped.push(l) }));
  assert.equal(skipped.length, 2);
  assert.ok(skipped.some((l) => l.includes('broken.png')) && skipped.some((l) => l.includes('cut.jpg')));
  for (const l of skipped) assert.ok(!l.includes('\n'));
  assert.equal(r.manifest!.skipped, 2);
  assert.equal(r.manifest!.tasks[0]!.skipped, 2);
  const m = r.manifest!;
  assert.equal(m.counts.train + m.counts.val + m.counts.test, 9);
  // the CLI prints the summary with the count, and one stderr line per bad file
  const cli = lorkdMeasured(['pack', root, '--out', path.join(tmp(), 'q'), '--size', '16']);
  assert.equal(cli.status, 0, cli.lines.join('\n'));
  assert.equal(cli.lines.filter((l) => l.startsWith('skipped: ')).length, 2);
  assert.match(cli.stdout, /skipped 2 bad files/);
});

test('pack: a killed pack continues where it stopped and ends with the bytes of an uninterrupted one', async () => {
  const dir = tmp();
  const killed = path.join(dir, 'killed');
  const args = ['pack', 'breastmnist', '--out', killed, '--format', 'jpeg', '--size', '40', '--shard-mib', '0.005', '--threads', '2'];
  const child = spawn(process.execPath, [BIN, ...args], { env: lorkdEnv({}), cwd: REPO, stdio: 'ignore' });
  const journal = path.join(killed, 'pack.journal');
  const shardLines = (): number => (existsSync(journal) ? readFileSync(journal, 'utf8').split('\n').filter(Boolean).length - 1 : 0);
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      if (shardLines() >= 3) {
        clearInterval(poll);
        child.kill('SIGKILL');
        resolve();
      }
    }, 5);
    child.on('exit', () => {
      clearInterval(poll);
      reject(new Error('the pack finished before it could be killed'));
    });
  });
  await new Promise((r) => child.on('exit', r));
  assert.ok(!existsSync(path.join(killed, 'manifest.json')), 'killed before the manifest');
  const kept = shardLines();
  assert.throws(() => openPack(killed), /not finished/);
  let resumedAt = -1;
  const o = { storage: 'jpeg' as const, size: 40, shardBytes: Math.round(0.005 * 2 ** 20) };
  const r = await packSources(['breastmnist'], opts(killed, { ...o, onStart: (at) => (resumedAt = at) }));
  assert.ok(resumedAt > 0, 'continued, not restarted');
  assert.ok(r.images < 780, `only the rest was packed (${r.images})`);
  const whole = path.join(dir, 'whole');
  await packSources(['breastmnist'], opts(whole, o));
  const a = openPack(killed);
  const b = openPack(whole);
  assert.ok(a.manifest.shards.length >= kept);
  assert.deepEqual({ ...a.manifest, created: '' }, { ...b.manifest, created: '' });
  for (const f of readdirSync(path.join(whole, 'index'))) assert.deepEqual(readFileSync(path.join(killed, 'index', f)), readFileSync(path.join(whole, 'index', f)), f);
  await a.verify();
  assert.ok(!existsSync(path.join(killed, 'pack.journal')) && !existsSync(path.join(killed, '.parts')));
});

test('pack: the CLI refuses bad options and a corrupt shard in one line', async () => {
  const out = path.join(tmp(), 'p');
  await packSources(['breastmnist'], opts(out));
  const shard = path.join(out, 'shards', '000002.shard');
  const b = readFileSync(shard);
  b[100] = b[100]! ^ 1;
  writeFileSync(shard, b);
  const v = lorkdMeasured(['pack', '--verify', out]);
  assert.equal(v.status, 2);
  assert.equal(v.lines.filter((l) => l.startsWith('lorkd: ')).length, 1);
  assert.match(v.lines.find((l) => l.startsWith('lorkd: '))!, new RegExp(`${shard.replace(/[/.]/g, '\\$&')}: shard is corrupt`));
  for (const [args, re] of [
    [['pack', 'breastmnist', '--out', path.join(tmp(), 'x'), '--format', 'png'], /--format must be raw or jpeg/],
    [['pack', 'breastmnist', '--out', out], /already holds a finished pack/],
  ] as const) {
    const r = lorkdMeasured([...args]);
    assert.equal(r.status, 2, r.lines.join('\n'));
    assert.match(r.lines.join('\n'), re);
  }
  assert.throws(() => parseSplit('val=0.7,test=0.5'), /val \+ test must be below 1/);
  assert.throws(() => parseSplit('train=0.5'), /--split must look like val=0.1,test=0.2/);
  assert.deepEqual(parseSplit('test=0.3'), { val: 0.1, test: 0.3 });
});

test('pack: a CSV source (path,label,split; a|b multi-label) keeps its rows, splits and labels; a missing file is skipped', async () => {
  const root = path.join(tmp(), 'scans');
  await imageFolder(root, 6, true);
  const files = readdirSync(root, { recursive: true }).map(String).filter((f) => f.endsWith('.png')).sort();
  const csvDir = path.dirname(root);
  const lines = ['path,label,split', ...files.map((f, i) => `scans/${f},${['edema', 'edema|nodule', 'nodule', '"effusion"'][i % 4]},${i < 4 ? 'train' : 'test'}`), 'scans/missing.png,edema,val'];
  writeFileSync(path.join(csvDir, 'chest.csv'), lines.join('\n') + '\n');
  const skipped: string[] = [];
  const out = path.join(tmp(), 'p');
  const r = await packSources([path.join(csvDir, 'chest.csv')], opts(out, { size: 16, onSkip: (l) => skipped.push(l) }));
  const m = r.manifest!;
  assert.equal(m.tasks[0]!.name, 'chest');
  assert.equal(m.tasks[0]!.task, 'multi-label');
  assert.deepEqual(m.tasks[0]!.classNames, ['edema', 'effusion', 'nodule']);
  assert.deepEqual(m.tasks[0]!.counts, { train: 4, val: 0, test: 2 });
  assert.equal(skipped.length, 1);
  assert.match(skipped[0]!, /missing\.png: cannot read image \(ENOENT\)/);
  const pack = openPack(out);
  // labels per record: one 0/1 value per class (edema, effusion, nodule), in CSV order per split
  const want = [[1, 0, 0], [1, 0, 1], [0, 0, 1], [0, 1, 0]];
  for (let i = 0; i < 4; i++) assert.deepEqual([...pack.record(0, 'train', i).labels], want[i]);
  assert.deepEqual([...pack.record(0, 'test', 0).labels], [1, 0, 0]);
  const img = await pack.image(0, 'train', 0);
  assert.deepEqual([img.height, img.width], [16, 16]);
});
