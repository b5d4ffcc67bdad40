// Hot changes without a restart: replacing a department under a concurrent load fails no request
// and every answer matches the old or the new expert (the one of the version it reports);
// requests queued before a replace finish on the version they started with; add and remove; the
// old models are freed once their last request is answered.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { memory, setNumThreads } from '../src/tensor/index.js';
import { Service, startServer, decompositionDepartments, type RunningServer, type ServeMode } from '../src/serve/index.js';
import { writeDecomposition, writeExperts, writeImages, references, maxDiff, post, type TestImage } from './serve-fixtures.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-serve-hot-'));
let oldFile: string;
let newFile: string;
let newExperts: Map<string, string>;
let images: TestImage[];
let oldRefs: Map<TestImage, Record<string, number>>;
let newRefs: Map<TestImage, Record<string, number>>;

before(() => {
  setNumThreads(1);
  oldFile = writeDecomposition(path.join(dir, 'old.safetensors'), 11);
  newFile = writeDecomposition(path.join(dir, 'new.safetensors'), 12);
  images = writeImages(path.join(dir, 'img'), 4);
  oldRefs = references(writeExperts(oldFile, path.join(dir, 'old')), images);
  newExperts = writeExperts(newFile, path.join(dir, 'new'));
  newRefs = references(newExperts, images);
  // The two checkpoints really differ, so a wrong version would be caught.
  for (const im of images) assert.ok(maxDiff(oldRefs.get(im)!, newRefs.get(im)!) > 1e-3);
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function withServer(mode: ServeMode, o: { maxWaitMs: number; maxBatch: number }, fn: (s: RunningServer) => Promise<void>): Promise<void> {
  const service = new Service({ mode, maxQueue: 1000, ...o }, decompositionDepartments(oldFile, mode));
  const srv = await startServer(service, { host: '127.0.0.1', port: 0, maxBodyBytes: 1 << 20 });
  try {
    await fn(srv);
  } finally {
    await srv.close();
  }
}

const admin = (url: string, name: string, body: unknown) =>
  fetch(`${url}/v1/admin/tasks/${name}`, { method: 'PUT', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));

async function queueDepth(url: string): Promise<number> {
  const m = await (await fetch(`${url}/metrics`)).text();
  return Number(/^lorkd_queue_depth (\d+)$/m.exec(m)?.[1]);
}

describe('serve: hot replace', () => {
  for (const [mode, how] of [
    ['eks', 'from a decomposition checkpoint'],
    ['fused', 'from an expert file'],
  ] as const) {
    test(`under load (${mode}, ${how}): no request fails, each answer matches the old or the new expert`, async () => {
      await withServer(mode, { maxWaitMs: 10, maxBatch: 8 }, async (s) => {
        const target = 'retina';
        const v0 = ((await (await fetch(`${s.url}/v1/tasks`)).json()) as { tasks: { task: string; version: number }[] }).tasks.find((t) => t.task === target)!.version;
        let stop = false;
        let replacedAt = -1;
        const answers: { im: TestImage; status: number; body: any }[] = [];
        const client = async (c: number) => {
          for (let i = c; !stop; i++) {
            const im = images[i % images.length]!;
            const r = await post(s.url, im);
            answers.push({ im, ...r });
          }
        };
        const clients = Array.from({ length: 6 }, (_, c) => client(c));
        while (answers.length < 30) await new Promise((r) => setTimeout(r, 5));
        const body = mode === 'eks' ? { file: newFile } : { file: newExperts.get(target) };
        const put = await admin(s.url, target, body);
        replacedAt = answers.length;
        assert.equal(put.status, 200, JSON.stringify(put.body));
        assert.equal(put.body.replaced, v0);
        const v1 = put.body.version as number;
        assert.ok(v1 > v0);
        while (answers.length < replacedAt + 40) await new Promise((r) => setTimeout(r, 5));
        stop = true;
        await Promise.all(clients);

        let sawNew = 0;
        for (const a of answers) {
          assert.equal(a.status, 200, JSON.stringify(a.body));
          if (a.im.task !== target) {
            assert.ok(maxDiff(a.body.probs, oldRefs.get(a.im)!) <= 1e-4, `${a.im.task} changed`);
            continue;
          }
          assert.ok(a.body.version === v0 || a.body.version === v1, `version ${a.body.version}`);
          const ref = (a.body.version === v0 ? oldRefs : newRefs).get(a.im)!;
          const d = maxDiff(a.body.probs, ref);
          assert.ok(d <= 1e-4, `${a.im.file} on version ${a.body.version}: off by ${d}`);
          if (a.body.version === v1) sawNew++;
        }
        assert.ok(sawNew > 0, 'no answer came from the new version');
        const tail = answers.slice(replacedAt + 12).filter((a) => a.im.task === target);
        assert.ok(tail.length > 0 && tail.every((a) => a.body.version === v1), 'requests sent after the replace answered by the old version');
      });
    });
  }

  test('requests queued before a replace finish on the version they started with', async () => {
    const live = memory().liveTensors;
    await withServer('eks', { maxWaitMs: 1500, maxBatch: 64 }, async (s) => {
      const mine = images.filter((im) => im.task === 'breast');
      const pending = mine.map((im) => post(s.url, im));
      for (let i = 0; i < 200 && (await queueDepth(s.url)) < mine.length; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(await queueDepth(s.url), mine.length);
      const put = await admin(s.url, 'breast', { file: newFile });
      assert.equal(put.status, 200);
      const early = await Promise.all(pending);
      early.forEach((a, i) => {
        assert.equal(a.status, 200);
        assert.equal(a.body.version, put.body.replaced);
        assert.ok(maxDiff(a.body.probs, oldRefs.get(mine[i]!)!) <= 1e-4);
      });
      const late = await post(s.url, mine[0]!);
      assert.equal(late.body.version, put.body.version);
      assert.ok(maxDiff(late.body.probs, newRefs.get(mine[0]!)!) <= 1e-4);
      // The old shared model still serves the other departments; the new one serves breast only.
      const tasks = ((await (await fetch(`${s.url}/v1/tasks`)).json()) as { tasks: { task: string; source: string }[] }).tasks;
      assert.deepEqual(tasks.map((t) => [t.task, path.basename(t.source)]), [
        ['breast', 'new.safetensors#breast'],
        ['pneumonia', 'old.safetensors#pneumonia'],
        ['retina', 'old.safetensors#retina'],
      ]);
    });
    assert.equal(memory().liveTensors, live, 'a replaced model was not freed');
  });

  test('add and remove a department', async () => {
    await withServer('auto', { maxWaitMs: 5, maxBatch: 8 }, async (s) => {
      const im = images.find((i) => i.task === 'pneumonia')!;
      const add = await admin(s.url, 'pneumonia-b', { file: newExperts.get('pneumonia') });
      assert.equal(add.status, 201);
      assert.equal(add.body.replaced, null);
      const a = await post(s.url, { ...im, task: 'pneumonia-b' });
      assert.equal(a.status, 200);
      assert.equal(a.body.servedBy, 'plain');
      assert.ok(maxDiff(a.body.probs, newRefs.get(im)!) <= 1e-4);
      const b = await post(s.url, im);
      assert.ok(maxDiff(b.body.probs, oldRefs.get(im)!) <= 1e-4);
      // One task of a checkpoint under another department name.
      const add2 = await admin(s.url, 'retina2', { file: newFile, task: 'retina' });
      assert.equal(add2.status, 201);
      const ri = images.find((i) => i.task === 'retina')!;
      assert.ok(maxDiff((await post(s.url, { ...ri, task: 'retina2' })).body.probs, newRefs.get(ri)!) <= 1e-4);

      const del = await fetch(`${s.url}/v1/admin/tasks/pneumonia`, { method: 'DELETE' });
      assert.equal(del.status, 200);
      const gone = await post(s.url, im);
      assert.equal(gone.status, 404);
      const tasks = ((await (await fetch(`${s.url}/v1/tasks`)).json()) as { tasks: { task: string }[] }).tasks.map((t) => t.task);
      assert.deepEqual(tasks.sort(), ['breast', 'pneumonia-b', 'retina', 'retina2']);
    });
  });
});
