// lorkd serve under a mixed-department concurrent load (loopback, bounded): every answer equals
// the fused expert's prediction for that image (lorkd predict's code path on the exported expert
// file; probabilities within 1e-4) in each mode, requests of different departments share
// micro-batches, and the read-only routes describe the service.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { memory, setNumThreads } from '../src/tensor/index.js';
import { Service, startServer, decompositionDepartments, expertDirDepartments, type RunningServer, type ServeMode } from '../src/serve/index.js';
import { decodeDicom, dicomToImage } from '../src/data/dicom.js';
import { loadExpertFile } from '../src/export/expert-file.js';
import { predictProbs } from '../src/export/predict.js';
import { REPO } from './helpers/pipeline.js';
import { TASKS, INPUT, MEAN, writeDecomposition, writeExperts, writeImages, references, maxDiff, post, type TestImage } from './serve-fixtures.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-serve-predict-'));
let images: TestImage[];
let refs: Map<TestImage, Record<string, number>>;
let checkpoint: string;
let expertDir: string;

before(() => {
  setNumThreads(1); // the machine is shared: one intra-op thread keeps libtorch from oversubscribing it
  checkpoint = writeDecomposition(path.join(dir, 'dm.safetensors'), 3);
  expertDir = path.join(dir, 'experts');
  const experts = writeExperts(checkpoint, expertDir);
  images = writeImages(path.join(dir, 'img'), 8);
  refs = references(experts, images);
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function withServer<T>(mode: ServeMode, fn: (s: RunningServer) => Promise<T>, o: { experts?: boolean; maxBatch?: number; maxWaitMs?: number } = {}): Promise<T> {
  const specs = o.experts ? await expertDirDepartments(expertDir) : decompositionDepartments(checkpoint, mode);
  const service = new Service({ mode, maxBatch: o.maxBatch ?? 16, maxWaitMs: o.maxWaitMs ?? 20, maxQueue: 1000 }, specs);
  const srv = await startServer(service, { host: '127.0.0.1', port: 0, maxBodyBytes: 1 << 20 });
  try {
    return await fn(srv);
  } finally {
    await srv.close();
  }
}

/** Sends every image (in rounds, interleaving departments) concurrently; checks every answer. */
async function mixedLoad(url: string, rounds: number): Promise<{ servedBy: Set<string>; mixedBatches: number; batches: number[] }> {
  const order = images.map((im, i) => [im, (i % 8) * TASKS.length + TASKS.findIndex((t) => t.name === im.task)] as const).sort((a, b) => a[1] - b[1]).map(([im]) => im);
  const jobs = Array.from({ length: rounds }, () => order).flat();
  const answers = await Promise.all(jobs.map((im) => post(url, im)));
  const servedBy = new Set<string>();
  const batches: number[] = [];
  answers.forEach((a, i) => {
    const im = jobs[i]!;
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(a.body.task, im.task);
    const d = maxDiff(a.body.probs, refs.get(im)!);
    assert.ok(d <= 1e-4, `${im.file}: probabilities differ from the fused expert's by ${d}`);
    const want = Object.entries(refs.get(im)!).reduce((b, e) => (e[1] > b[1] ? e : b))[0];
    assert.equal(a.body.class, want);
    servedBy.add(a.body.servedBy);
    batches.push(a.body.batch);
  });
  return { servedBy, mixedBatches: batches.filter((b) => b > 1).length, batches };
}

describe('serve: answers equal the fused experts under a mixed concurrent load', () => {
  for (const mode of ['eks', 'fused', 'auto'] as const) {
    test(`mode ${mode}`, async () => {
      await withServer(mode, async (s) => {
        const r = await mixedLoad(s.url, mode === 'auto' ? 3 : 2);
        if (mode === 'eks') assert.deepEqual([...r.servedBy], ['eks']);
        if (mode === 'fused') assert.deepEqual([...r.servedBy], ['plain']);
        // Requests of all three departments were in flight together: batches larger than one formed.
        assert.ok(Math.max(...r.batches) > 1, `batch sizes ${r.batches.join(',')}`);
        if (mode === 'auto') {
          const m = await (await fetch(`${s.url}/metrics`)).text();
          const n = (p: string) => Number(new RegExp(`^lorkd_forwards_total\\{path="${p}"\\} (\\d+)`, 'm').exec(m)?.[1] ?? 0);
          // auto measured both ways before choosing.
          assert.ok(n('eks') > 0 && n('plain') > 0, m);
        }
      });
    });
  }

  test('an EKS micro-batch holds rows of several departments', async () => {
    await withServer('eks', async (s) => {
      const m0 = await (await fetch(`${s.url}/metrics`)).text();
      assert.match(m0, /# TYPE lorkd_batch_size histogram/);
      const r = await mixedLoad(s.url, 1);
      const m = await (await fetch(`${s.url}/metrics`)).text();
      const forwards = Number(/^lorkd_forwards_total\{path="eks"\} (\d+)/m.exec(m)?.[1]);
      // 24 requests of 3 departments in fewer EKS passes than requests: one pass served several departments
      // (a pass per department would need at least 3 and no fewer than requests / maxBatch per department).
      assert.ok(forwards < images.length, `${forwards} EKS passes for ${images.length} requests`);
      assert.ok(r.mixedBatches > 0);
    }, { maxBatch: 32, maxWaitMs: 50 });
  });

  test('expert files (--experts): each department on its own model', async () => {
    await withServer('fused', async (s) => {
      const r = await mixedLoad(s.url, 1);
      assert.deepEqual([...r.servedBy], ['plain']);
    }, { experts: true });
  });

  test('multipart upload, /v1/tasks, /healthz, /metrics', async () => {
    await withServer('eks', async (s) => {
      const im = images.find((i) => i.task === 'retina')!;
      const form = new FormData();
      form.append('note', 'x');
      form.append('image', new Blob([im.bytes], { type: im.type }), 'fundus.png');
      const r = await fetch(`${s.url}/v1/predict?task=retina`, { method: 'POST', body: form });
      assert.equal(r.status, 200);
      const body = (await r.json()) as { probs: Record<string, number>; version: number; classNames: string[] };
      assert.ok(maxDiff(body.probs, refs.get(im)!) <= 1e-4);
      assert.deepEqual(body.classNames, TASKS[2]!.classNames);
      assert.equal(typeof body.version, 'number');

      const tasks = (await (await fetch(`${s.url}/v1/tasks`)).json()) as { mode: string; tasks: { task: string; classNames: string[]; preprocessing: { inputSize: number; mean: number[] } }[] };
      assert.equal(tasks.mode, 'eks');
      assert.deepEqual(tasks.tasks.map((t) => t.task), TASKS.map((t) => t.name));
      assert.deepEqual(tasks.tasks.map((t) => t.classNames), TASKS.map((t) => t.classNames));
      assert.equal(tasks.tasks[0]!.preprocessing.inputSize, INPUT);
      assert.deepEqual(tasks.tasks[0]!.preprocessing.mean, MEAN);

      const h = await fetch(`${s.url}/healthz`);
      assert.equal(h.status, 200);
      assert.equal(((await h.json()) as { status: string }).status, 'ok');

      const m = await fetch(`${s.url}/metrics`);
      assert.match(m.headers.get('content-type') ?? '', /^text\/plain/);
      const text = await m.text();
      assert.match(text, /^lorkd_requests_total\{task="retina",status="200"\} 1$/m);
      assert.match(text, /^lorkd_request_duration_seconds_count 1$/m);
      assert.match(text, /^lorkd_queue_depth 0$/m);
    });
  });

  test('a DICOM upload equals the fused expert on the decoded frame; its compressed copies (decode workers) give the same', async () => {
    const file = path.join(REPO, 'test', 'fixtures', 'dicom', 'MR_small.dcm');
    const bytes = new Uint8Array(readFileSync(file));
    const img = dicomToImage(decodeDicom(bytes, file));
    const { model, meta } = loadExpertFile(path.join(expertDir, 'pneumonia.safetensors'));
    let want: Float32Array;
    try {
      want = predictProbs(model, meta, img.data, 1, img.height, img.width)[0]!;
    } finally {
      model.dispose();
    }
    await withServer('eks', async (s) => {
      const r = await post(s.url, { task: 'pneumonia', bytes, type: 'application/dicom' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(maxDiff(r.body.probs, Object.fromEntries(meta.classNames.map((c, k) => [c, want[k]!]))) <= 1e-4);
      // the same pixels as JPEG-LS, JPEG 2000, JPEG Lossless and HTJ2K (test/fixtures/dicom/README.md)
      for (const f of ['MR_small_jpeg_ls_lossless.dcm', 'MR_small_jp2klossless.dcm', 'MR_small_jpeg_lossless.dcm', 'MR_small_htj2k_lossless.dcm']) {
        const c = await post(s.url, { task: 'pneumonia', bytes: new Uint8Array(readFileSync(path.join(path.dirname(file), f))), type: 'application/dicom' });
        assert.equal(c.status, 200, `${f}: ${JSON.stringify(c.body)}`);
        assert.ok(maxDiff(c.body.probs, r.body.probs) <= 1e-6, f);
      }
    });
  });

  test('no tensors leak: live tensors are back where they were after serving and closing', async () => {
    const before = memory().liveTensors;
    await withServer('auto', async (s) => {
      await mixedLoad(s.url, 1);
    });
    assert.equal(memory().liveTensors, before);
  });
});
