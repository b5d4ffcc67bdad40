// `lorkd serve` as a process: SIGTERM drains (every request already taken is answered, then the
// process exits 0), and the command's own mistakes are one-line errors with exit status 2.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { lorkd } from './helpers/pipeline.js';
import { writeDecomposition, writeExperts, writeImages, references, maxDiff, post, startServeProcess, type TestImage } from './serve-fixtures.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-serve-cli-'));
let checkpoint: string;
let expertDir: string;
let images: TestImage[];
let refs: Map<TestImage, Record<string, number>>;

before(() => {
  checkpoint = writeDecomposition(path.join(dir, 'dm.safetensors'), 21);
  expertDir = path.join(dir, 'experts');
  images = writeImages(path.join(dir, 'img'), 3);
  refs = references(writeExperts(checkpoint, expertDir), images);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const oneLineError = (stderr: string, pattern: RegExp): void => {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0]!, /^lorkd: /);
  assert.match(lines[0]!, pattern);
};

describe('lorkd serve (process)', () => {
  test('SIGTERM drains the requests in flight, then exits 0', async () => {
    // A long max-wait holds every request in the queue until the drain flushes it.
    const { child, url, tasks, stderr, exited } = await startServeProcess(['--decomposition', checkpoint, '--max-wait-ms', '20000', '--max-batch', '64']);
    try {
      assert.deepEqual(tasks, ['breast', 'pneumonia', 'retina']);
      const pending = images.map((im) => post(url, im));
      let depth = 0;
      for (let i = 0; i < 300 && !(depth >= images.length); i++) {
        await new Promise((r) => setTimeout(r, 20));
        depth = Number(/^lorkd_queue_depth (\d+)$/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1]);
      }
      assert.equal(depth, images.length, 'the requests did not reach the queue');
      const t0 = Date.now();
      child.kill('SIGTERM');
      const answers = await Promise.all(pending);
      answers.forEach((a, i) => {
        assert.equal(a.status, 200, JSON.stringify(a.body));
        assert.ok(maxDiff(a.body.probs, refs.get(images[i]!)!) <= 1e-4);
        assert.equal(a.body.batch, images.length);
      });
      assert.equal(await exited, 0, stderr());
      assert.ok(Date.now() - t0 < 15000, 'the drain waited for max-wait-ms instead of flushing');
      assert.match(stderr(), /SIGTERM: draining/);
      await assert.rejects(fetch(`${url}/healthz`), 'still listening after exit');
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('one-line errors, exit 2', () => {
    let r = lorkd(['serve', '--decomposition', checkpoint, '--host', '0.0.0.0', '--port', '0']);
    assert.equal(r.status, 2);
    oneLineError(r.stderr, /--token/);
    r = lorkd(['serve', '--port', '0']);
    assert.equal(r.status, 2);
    oneLineError(r.stderr, /exactly one of --decomposition/);
    r = lorkd(['serve', '--experts', expertDir, '--mode', 'eks', '--port', '0']);
    assert.equal(r.status, 2);
    oneLineError(r.stderr, /--mode eks needs --decomposition/);
    r = lorkd(['serve', '--decomposition', path.join(dir, 'missing.safetensors'), '--port', '0']);
    assert.equal(r.status, 2);
    oneLineError(r.stderr, /missing\.safetensors/);
    r = lorkd(['serve', '--help']);
    assert.equal(r.status, 0);
    for (const o of ['--decomposition', '--experts', '--max-batch', '--max-wait-ms', '--mode', '--token', '--json']) assert.ok(r.stdout.includes(o), o);
  });
});
