// lorkd serve's faults: a bounded queue answers 503 with Retry-After past its limit and keeps
// serving; bad requests get 4xx with one line of JSON and never stop the service; the bearer
// token is enforced; binding beyond loopback needs a token.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { memory, setNumThreads, UserError } from '../src/tensor/index.js';
import { Service, startServer, checkBinding, isLoopback, decompositionDepartments, type RunningServer } from '../src/serve/index.js';
import { writeDecomposition, writeImages, post, type TestImage } from './serve-fixtures.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-serve-faults-'));
let checkpoint: string;
let images: TestImage[];

before(() => {
  setNumThreads(1);
  checkpoint = writeDecomposition(path.join(dir, 'dm.safetensors'), 5);
  images = writeImages(path.join(dir, 'img'), 2);
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function withServer(o: { maxBatch?: number; maxWaitMs?: number; maxQueue?: number; token?: string; maxBodyBytes?: number }, fn: (s: RunningServer) => Promise<void>): Promise<void> {
  const service = new Service({ mode: 'eks', maxBatch: o.maxBatch ?? 8, maxWaitMs: o.maxWaitMs ?? 5, maxQueue: o.maxQueue ?? 64 }, decompositionDepartments(checkpoint, 'eks'));
  const srv = await startServer(service, { host: '127.0.0.1', port: 0, maxBodyBytes: o.maxBodyBytes ?? 64 * 1024, ...(o.token ? { token: o.token } : {}) });
  try {
    await fn(srv);
  } finally {
    await srv.close();
  }
}

/** A one-line JSON error body. */
function assertError(r: { status: number; body: unknown }, status: number, pattern?: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  const e = (r.body as { error?: unknown }).error;
  assert.equal(typeof e, 'string', JSON.stringify(r.body));
  assert.ok(!(e as string).includes('\n'), `multi-line error: ${e}`);
  if (pattern) assert.match(e as string, pattern);
}

async function raw(url: string, pathname: string, init: RequestInit = {}): Promise<{ status: number; body: unknown; headers: Headers }> {
  const r = await fetch(`${url}${pathname}`, init);
  const text = await r.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: r.status, body, headers: r.headers };
}

describe('serve: overload', () => {
  test('past the queue limit: 503 with Retry-After, the queued ones are answered, and the service goes on', async () => {
    // The batch waits 400 ms for more requests, so the first 4 fill the queue and the rest are refused.
    await withServer({ maxBatch: 64, maxWaitMs: 400, maxQueue: 4 }, async (s) => {
      const im = images[0]!;
      const rs = await Promise.all(Array.from({ length: 12 }, () => post(s.url, im)));
      const ok = rs.filter((r) => r.status === 200);
      const refused = rs.filter((r) => r.status === 503);
      assert.equal(ok.length, 4, rs.map((r) => r.status).join(','));
      assert.equal(refused.length, 8);
      for (const r of refused) {
        assertError(r, 503, /overloaded/);
        assert.ok(Number(r.headers.get('retry-after')) >= 1, `Retry-After ${r.headers.get('retry-after')}`);
      }
      for (const r of ok) assert.equal(r.body.batch, 4);
      const again = await post(s.url, im);
      assert.equal(again.status, 200);
      const m = await (await fetch(`${s.url}/metrics`)).text();
      assert.match(m, new RegExp(`^lorkd_requests_total\\{task="${im.task}",status="503"\\} 8$`, 'm'));
      assert.match(m, new RegExp(`^lorkd_requests_total\\{task="${im.task}",status="200"\\} 5$`, 'm'));
    });
  });
});

describe('serve: bad requests get 4xx and one line of JSON', () => {
  test('undecodable images, unknown tasks, wrong content types, big bodies', async () => {
    const live = memory().liveTensors;
    await withServer({ maxBodyBytes: 4096 }, async (s) => {
      const png = images.find((i) => i.type === 'image/png')!;
      const bad = (task: string, body: Uint8Array | string, type?: string) =>
        raw(s.url, `/v1/predict?task=${task}`, { method: 'POST', body, headers: type ? { 'content-type': type } : {} });
      assertError(await bad('breast', new Uint8Array([1, 2, 3, 4, 5]), 'image/png'), 400, /not a PNG or JPEG/);
      assertError(await bad('breast', png.bytes.slice(0, 40), 'image/png'), 400, /PNG/);
      assertError(await bad('breast', new Uint8Array(0), 'image/png'), 400, /empty/);
      const dicom = new Uint8Array(200);
      dicom.set([0x44, 0x49, 0x43, 0x4d], 128);
      assertError(await bad('breast', dicom, 'application/dicom'), 400);
      assertError(await bad('nope', png.bytes, 'image/png'), 404, /unknown task "nope".*breast/);
      assertError(await raw(s.url, '/v1/predict', { method: 'POST', body: png.bytes, headers: { 'content-type': 'image/png' } }), 400, /task/);
      assertError(await bad('breast', 'hello', 'text/plain'), 415, /content type "text\/plain"/);
      assertError(await bad('breast', 'a=b', 'application/x-www-form-urlencoded'), 415);
      assertError(await bad('breast', new Uint8Array(8192), 'image/png'), 413, /4096/);
      // A chunked body (no Content-Length) past the limit is cut off too.
      const chunks = new ReadableStream<Uint8Array>({
        start(c) {
          for (let i = 0; i < 4; i++) c.enqueue(new Uint8Array(2000));
          c.close();
        },
      });
      assertError(await raw(s.url, '/v1/predict?task=breast', { method: 'POST', body: chunks, headers: { 'content-type': 'image/png' }, duplex: 'half' } as RequestInit), 413);
      const form = new FormData();
      form.append('note', 'no file here');
      assertError(await raw(s.url, '/v1/predict?task=breast', { method: 'POST', body: form }), 400, /no file/);
      assertError(await raw(s.url, '/v1/nothing'), 404);
      assertError(await raw(s.url, '/v1/admin/tasks/breast', { method: 'PUT', body: 'not json', headers: { 'content-type': 'application/json' } }), 400, /JSON/);
      assertError(await raw(s.url, '/v1/admin/tasks/breast', { method: 'PUT', body: JSON.stringify({ file: path.join(dir, 'missing.safetensors') }) }), 400, /missing\.safetensors/);
      assertError(await raw(s.url, '/v1/admin/tasks/bad%20name', { method: 'PUT', body: JSON.stringify({ file: checkpoint }) }), 400, /department name/);
      assertError(await raw(s.url, '/v1/admin/tasks/nope', { method: 'DELETE' }), 404);
      // A burst of garbage beside good requests: the good ones are answered, the service is up.
      const mixed = await Promise.all([...Array.from({ length: 6 }, () => bad('retina', new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0, 9]), 'image/png')), ...images.map((im) => post(s.url, im))]);
      mixed.slice(0, 6).forEach((r) => assertError(r, 400));
      mixed.slice(6).forEach((r) => assert.equal(r.status, 200));
      const h = await raw(s.url, '/healthz');
      assert.equal(h.status, 200);
      const m = await (await fetch(`${s.url}/metrics`)).text();
      assert.match(m, /^lorkd_requests_total\{task="breast",status="400"\} \d+$/m);
      assert.match(m, /^lorkd_requests_total\{task="unknown",status="404"\} 1$/m);
    });
    assert.equal(memory().liveTensors, live, 'bad requests leaked tensors');
  });
});

describe('serve: security', () => {
  test('with a token, every route but /healthz needs it', async () => {
    await withServer({ token: 'sekret-123' }, async (s) => {
      const im = images[0]!;
      const none = await post(s.url, im);
      assertError(none, 401, /token/);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer');
      assertError(await post(s.url, im, { authorization: 'Bearer sekret-124' }), 401);
      assertError(await post(s.url, im, { authorization: 'Basic sekret-123' }), 401);
      assertError(await post(s.url, im, { authorization: 'Bearer sekret-12' }), 401);
      assert.equal((await post(s.url, im, { authorization: 'Bearer sekret-123' })).status, 200);
      assertError(await raw(s.url, '/metrics'), 401);
      assertError(await raw(s.url, '/v1/tasks'), 401);
      assertError(await raw(s.url, '/v1/admin/tasks/breast', { method: 'DELETE' }), 401);
      assert.equal((await raw(s.url, '/v1/tasks', { headers: { authorization: 'Bearer sekret-123' } })).status, 200);
      assert.equal((await raw(s.url, '/healthz')).status, 200);
      // The unauthorised DELETE removed nothing.
      assert.equal((await post(s.url, { ...im, task: 'breast' }, { authorization: 'Bearer sekret-123' })).status, 200);
    });
  });

  test('binding beyond loopback needs a token', async () => {
    for (const h of ['127.0.0.1', 'localhost', '::1', '[::1]', '127.1.2.3']) assert.ok(isLoopback(h), h);
    for (const h of ['0.0.0.0', '::', '192.168.1.2', 'example.org']) assert.ok(!isLoopback(h), h);
    assert.throws(() => checkBinding('0.0.0.0', undefined), (e: unknown) => e instanceof UserError && /--token/.test(e.message));
    assert.throws(() => checkBinding('127.0.0.1', 'two words'), UserError);
    checkBinding('0.0.0.0', 'sekret-123');
    checkBinding('127.0.0.1', undefined);
    const service = new Service({ mode: 'eks', maxBatch: 4, maxWaitMs: 1, maxQueue: 8 }, decompositionDepartments(checkpoint, 'eks'));
    await assert.rejects(startServer(service, { host: '0.0.0.0', port: 0, maxBodyBytes: 1024 }), /--token/);
    service.departments.clear();
  });
});
