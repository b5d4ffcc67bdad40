// lorkd serve with ONNX experts (src/serve/ort-expert.ts): a folder of `lorkd export --format onnx`
// files given to --experts is served by onnxruntime-node behind the same API. Its answers equal
// the fused expert files' served by lorkd's engine within 1e-4 (same images, same preprocessing),
// /v1/tasks names the engine, and a broken ONNX file is a one-line error at start. The same holds
// for bench/ort-serve.ts, the libtorch-free server that bench/serve.ts's `plain-ort` runs, whose
// process indeed never maps libtorch.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setNumThreads, UserError } from '../src/tensor/index.js';
import { expertFileToOnnx } from '../src/export/onnx/index.js';
import { Service, startServer, expertDirDepartments, type RunningServer } from '../src/serve/index.js';
import { writeDecomposition, writeExperts, writeImages, post, maxDiff, type TestImage } from './serve-fixtures.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-serve-ort-'));
let expertDir: string;
let onnxDir: string;
let images: TestImage[];

before(() => {
  setNumThreads(1);
  const checkpoint = writeDecomposition(path.join(dir, 'dm.safetensors'), 7);
  expertDir = path.join(dir, 'experts');
  const experts = writeExperts(checkpoint, expertDir);
  onnxDir = path.join(dir, 'onnx');
  mkdirSync(onnxDir);
  for (const [task, file] of experts) expertFileToOnnx(file, path.join(onnxDir, `${task}.onnx`));
  images = writeImages(path.join(dir, 'img'), 4);
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function withServer<T>(folder: string, fn: (s: RunningServer) => Promise<T>): Promise<T> {
  const service = new Service({ mode: 'fused', maxBatch: 8, maxWaitMs: 10, maxQueue: 100 }, await expertDirDepartments(folder));
  const srv = await startServer(service, { host: '127.0.0.1', port: 0, maxBodyBytes: 1 << 20 });
  try {
    return await fn(srv);
  } finally {
    await srv.close();
  }
}

describe('serve: ONNX experts through onnxruntime-node', () => {
  test("answers equal lorkd's fused experts within 1e-4 under concurrent mixed load", async () => {
    const lorkd = await withServer(expertDir, (s) => Promise.all(images.map((im) => post(s.url, im))));
    const ort = await withServer(onnxDir, async (s) => {
      const tasks = (await (await fetch(`${s.url}/v1/tasks`)).json()) as { tasks: { task: string; engine?: string; servedBy: string[] }[] };
      assert.deepEqual(tasks.tasks.map((t) => [t.task, t.engine, t.servedBy.join()]), [
        ['breast', 'onnxruntime', 'plain'],
        ['pneumonia', 'onnxruntime', 'plain'],
        ['retina', 'onnxruntime', 'plain'],
      ]);
      const rs = await Promise.all(images.map((im) => post(s.url, im)));
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      assert.ok(Number(/^lorkd_model_bytes (\d+)$/m.exec(metrics)?.[1]) > 0, 'the ONNX weights count as model bytes');
      return rs;
    });
    images.forEach((im, i) => {
      assert.equal(ort[i]!.status, 200, JSON.stringify(ort[i]!.body));
      assert.equal(lorkd[i]!.status, 200);
      assert.equal(ort[i]!.body.task, im.task);
      assert.equal(ort[i]!.body.servedBy, 'plain');
      const d = maxDiff(ort[i]!.body.probs, lorkd[i]!.body.probs);
      assert.ok(d < 1e-4, `${im.file}: onnxruntime and lorkd differ by ${d}`);
      assert.equal(ort[i]!.body.class, lorkd[i]!.body.class);
    });
    assert.ok(ort.some((r) => r.body.batch > 1), 'requests were micro-batched');
  });

  test("bench/ort-serve.js (plain-ort): answers equal lorkd's within 1e-4, and libtorch is not loaded", async () => {
    const lorkd = await withServer(expertDir, (s) => Promise.all(images.map((im) => post(s.url, im))));
    const script = fileURLToPath(new URL('../bench/ort-serve.js', import.meta.url));
    for (const task of ['breast', 'retina']) {
      const child = spawn(process.execPath, [script, '--onnx', path.join(onnxDir, `${task}.onnx`), '--max-wait-ms', '10'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, LORKD_NUM_THREADS: '1' } });
      try {
        const line = await new Promise<string>((resolve, reject) => {
          createInterface({ input: child.stdout! }).once('line', resolve);
          child.once('exit', (c) => reject(new Error(`ort-serve exited ${c}`)));
        });
        const { url } = JSON.parse(line) as { url: string };
        const mine = images.filter((im) => im.task === task);
        const rs = await Promise.all(mine.map((im) => post(url, im)));
        rs.forEach((r, i) => {
          assert.equal(r.status, 200, JSON.stringify(r.body));
          const want = lorkd[images.indexOf(mine[i]!)]!.body;
          const d = maxDiff(r.body.probs, want.probs);
          assert.ok(d < 1e-4, `${mine[i]!.file}: ort-serve and lorkd differ by ${d}`);
          assert.equal(r.body.class, want.class);
        });
        assert.equal((await post(url, { ...mine[0]!, task: 'other' })).status, 404);
        assert.ok(!readFileSync(`/proc/${child.pid}/maps`, 'utf8').includes('libtorch'), 'ort-serve mapped libtorch');
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
      }
    }
  });

  test('a broken ONNX file in the folder: one-line UserError naming it', async () => {
    const bad = path.join(dir, 'bad');
    mkdirSync(bad);
    writeFileSync(path.join(bad, 'x.onnx'), Buffer.from('not an onnx model'));
    await assert.rejects(expertDirDepartments(bad), (e: Error) => e instanceof UserError && e.message.includes('x.onnx') && !e.message.includes('\n'));
  });
});
