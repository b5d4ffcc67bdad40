// lorkd serve under hostile requests, round 2 (issue 23): no single request can stop or freeze the
// service. During every attack /healthz and /metrics are polled, and each must answer within
// 100 ms: decoding runs in capped worker threads (decode-pool.ts), so the event loop only reads
// bodies and hands them over. Attacks: a legal 1-pixel-wide PNG at the pixel limit, several
// expensive legal images at once (admitted by the pixel budget: 503 + Retry-After), a JPEG that
// exhausts a decode worker's heap, a decode past its deadline, and admin PUTs of a FIFO, a folder,
// /proc/self/mem, /dev/zero, a deeply nested body and an expert whose metadata is over a limit;
// SIGTERM with a slow client exits at the drain's deadline; serve options have stated ranges.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { deflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors.js';
import { writeDecomposition, writeExperts, writeImages, post, startServeProcess, type TestImage } from './serve-fixtures.js';
import { lorkd } from './helpers/pipeline.js';
import { craftPng, pngFile, pngRows, tallPng } from './helpers/hostile.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-serve-hostile-'));
let checkpoint: string;
let experts: Map<string, string>;
let images: TestImage[];

before(() => {
  checkpoint = writeDecomposition(path.join(dir, 'dm.safetensors'), 7);
  experts = writeExperts(checkpoint, path.join(dir, 'experts'));
  images = writeImages(path.join(dir, 'img'), 1);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A running `lorkd serve` process: its URL and pid. */
interface Served {
  url: string;
  pid: number;
}

/**
 * Runs `fn` against a `lorkd serve` process (the service alone in its process, as deployed) with
 * `env` (the decode limits) and extra options; stops it with SIGTERM afterwards.
 */
async function withServer(o: { env?: Record<string, string>; args?: string[] }, fn: (s: Served) => Promise<void>): Promise<void> {
  const args = ['--decomposition', checkpoint, '--max-batch', '8', '--max-wait-ms', '2', '--decode-threads', '2', '--max-body-bytes', String(16 * 2 ** 20), '--quiet', ...(o.args ?? [])];
  const p = await startServeProcess(args, o.env);
  try {
    // One prediction first: libtorch's first forward (its own warm-up) is not an attack.
    assert.equal((await post(p.url, images[0]!)).status, 200);
    await fn({ url: p.url, pid: p.child.pid! });
    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 0, p.stderr());
  } finally {
    p.child.kill('SIGKILL');
  }
}

/** Resident memory of process `pid` in bytes (Linux /proc). */
const rssOf = (pid: number): number => Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;

const BOUND_MS = 100;
/** Most the service's resident memory may grow during one attack (before the fix: 3.6-5.4 GB). */
const GROWTH_MIB = 512;

/**
 * Runs `attack` while polling /healthz and /metrics every 20 ms; asserts that every answer came
 * within BOUND_MS and that the service's resident memory grew by less than GROWTH_MIB; returns
 * the attack's result.
 */
async function underAttack<T>(s: Served, what: string, attack: () => Promise<T>): Promise<T> {
  const get = async (p: string): Promise<number> => {
    const t0 = performance.now();
    const r = await fetch(`${s.url}${p}`);
    await r.text();
    assert.ok(r.status === 200, `${p}: ${r.status}`);
    return performance.now() - t0;
  };
  await get('/healthz'); // connection set up before the clock matters
  let done = false;
  const times: number[] = [];
  const rss0 = rssOf(s.pid);
  let rss = rss0;
  const poll = (async () => {
    while (!done) {
      times.push(await get('/healthz'), await get('/metrics'));
      rss = Math.max(rss, rssOf(s.pid));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try {
    return await attack();
  } finally {
    done = true;
    await poll;
    const worst = Math.max(...times);
    const grew = (rss - rss0) / 2 ** 20;
    console.log(`# ${what}: ${times.length} /healthz and /metrics answers, slowest ${worst.toFixed(1)} ms; service resident memory +${grew.toFixed(0)} MiB`);
    assert.ok(grew < GROWTH_MIB, `${what}: resident memory grew by ${grew.toFixed(0)} MiB`);
    assert.ok(times.length >= 2, `${what}: only ${times.length} answers`);
    assert.ok(worst < BOUND_MS, `${what}: /healthz or /metrics took ${worst.toFixed(1)} ms (bound ${BOUND_MS} ms)`);
  }
}

/** A PNG of `rows` (already filtered scanlines) with the given header fields. */
const png = (width: number, height: number, depth: number, colorType: number, rows: Buffer): Uint8Array =>
  new Uint8Array(pngFile({ width, height, depth, colorType }, deflateSync(rows, { level: 9 })));

const postBytes = (s: Served, bytes: Uint8Array, type = 'image/png') => post(s.url, { task: 'breast', bytes, type });

test('a legal 1 x 16,777,216 PNG (at LORKD_MAX_IMAGE_PIXELS) is answered; the service is never blocked', async () => {
  const tall = tallPng(2 ** 24);
  await withServer({ env: { LORKD_MAX_IMAGE_PIXELS: String(2 ** 24) } }, async (s) => {
    const r = await underAttack(s, 'tall PNG', () => postBytes(s, new Uint8Array(tall)));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.task, 'breast');
    assert.equal((await post(s.url, images[0]!)).status, 200);
  });
});

test('expensive legal images at once: admitted by the pixel budget, the rest get 503 with Retry-After', async () => {
  // 2048 x 2048 16-bit RGBA: 33 MB of scanlines each; the budget holds one of them.
  const side = 2048;
  const big = png(side, side, 16, 6, Buffer.alloc(side * (1 + 8 * side)));
  await withServer({ args: ['--max-pixels', String(side * side)] }, async (s) => {
    const rs = await underAttack(s, 'three 2048x2048 RGBA16 PNGs', () => Promise.all([0, 1, 2].map(() => postBytes(s, big))));
    const codes = rs.map((r) => r.status).sort();
    assert.deepEqual(codes, [200, 503, 503], JSON.stringify(rs.map((r) => r.body)));
    for (const r of rs.filter((x) => x.status === 503)) {
      assert.match(r.body.error, /overloaded: images of 4194304 pixels are being decoded \(limit 4194304 pixels in flight\)/);
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
    }
    const m = await (await fetch(`${s.url}/metrics`)).text();
    assert.match(m, /^lorkd_pixels_in_flight 0$/m);
    assert.equal((await postBytes(s, big)).status, 200, 'admitted again once the budget is free');
    // A header claiming more than the pixel limit is refused at once, taking no budget.
    const liar = await postBytes(s, new Uint8Array(craftPng(100_000, 100_000, pngRows(1, 1))));
    assert.equal(liar.status, 400);
    assert.match(liar.body.error, /^image: its header claims 10000000000 pixels, over the limit \(limit 67108864 pixels per image/);
  });
});

test('a JPEG that exhausts a decode worker\'s heap costs that worker only; a decode past its deadline is refused', async () => {
  // An 8x8 JPEG whose frame header is patched to claim 4096 x 4096: jpeg-js allocates its blocks first.
  const small = Buffer.from(jpeg.encode({ width: 8, height: 8, data: new Uint8Array(256).fill(90) }, 90).data);
  for (let p = 2; p < small.length; p += 2 + small.readUInt16BE(p + 2)) {
    if (small[p + 1] === 0xc0) {
      small.writeUInt16BE(4096, p + 5);
      small.writeUInt16BE(4096, p + 7);
      break;
    }
  }
  await withServer({ env: { LORKD_DECODE_HEAP: '64M' } }, async (s) => {
    const bomb = await underAttack(s, 'heap bomb JPEG', () => post(s.url, { task: 'breast', bytes: new Uint8Array(small), type: 'image/jpeg' }));
    assert.equal(bomb.status, 400, JSON.stringify(bomb.body));
    assert.match(bomb.body.error, /^image: decoding needs more heap than allowed \(limit 64\.00 MiB of JavaScript heap per image decode \(serve\); set LORKD_DECODE_HEAP/);
    for (const im of images) assert.equal((await post(s.url, im)).status, 200, 'the service goes on with a new worker');
  });
  const tall = tallPng(2 ** 24);
  await withServer({ env: { LORKD_DECODE_SECONDS: '0.2', LORKD_MAX_IMAGE_PIXELS: String(2 ** 24) } }, async (s) => {
    const slow = await underAttack(s, 'decode past its deadline', () => postBytes(s, new Uint8Array(tall)));
    assert.equal(slow.status, 400, JSON.stringify(slow.body));
    assert.match(slow.body.error, /^image: decoding takes longer than allowed \(limit 0\.2 seconds per image decode \(serve\); set LORKD_DECODE_SECONDS/);
    // The service goes on with new workers. Their decodes run at a lower priority than the
    // service under the same 0.2 s deadline, so on a loaded machine (a clean-clone test run beside
    // a native build and two training processes) one can be starved past it: such a refusal is
    // retried, at most twice; any other answer fails.
    for (const im of images) {
      let r = await post(s.url, im);
      for (let retry = 0; retry < 2 && r.status === 400 && /decoding takes longer than allowed/.test(JSON.stringify(r.body)); retry++) r = await post(s.url, im);
      assert.equal(r.status, 200, `the service goes on with new workers: ${JSON.stringify(r.body)}`);
    }
  });
});

test('admin PUTs of a FIFO, a folder, /proc/self/mem, /dev/zero, a deep body or over-limit metadata: 400, one line', async () => {
  const fifo = path.join(dir, 'fifo.safetensors');
  execFileSync('mkfifo', [fifo]);
  const folder = path.join(dir, 'a-folder');
  mkdirSync(folder);
  // An expert whose metadata says input_size 4096 (each image would cost gigabytes).
  const { tensors, metadata } = loadSafetensors(experts.get('breast')!);
  const huge = path.join(dir, 'huge-input.safetensors');
  saveSafetensors(huge, tensors, { ...metadata, input_size: '4096' });
  for (const t of tensors.values()) t.dispose();
  await withServer({}, async (s) => {
    const put = (body: string) => fetch(`${s.url}/v1/admin/tasks/x`, { method: 'PUT', body, headers: { 'content-type': 'application/json' } });
    const cases: [string, string, RegExp][] = [
      ['FIFO', JSON.stringify({ file: fifo }), /fifo\.safetensors: cannot read file \(a FIFO, not a regular file\)/],
      ['folder', JSON.stringify({ file: folder }), /a-folder: cannot read file \(a folder, not a regular file\)/],
      ['/proc/self/mem', JSON.stringify({ file: '/proc/self/mem' }), /\/proc\/self\/mem: not a safetensors file/],
      ['/dev/zero', JSON.stringify({ file: '/dev/zero' }), /\/dev\/zero: cannot read file \(a character device, not a regular file\)/],
      ['deep JSON', '['.repeat(30_000) + ']'.repeat(30_000), /the JSON body needs "file"/],
      ['deep JSON, unclosed', '{"file":' + '['.repeat(60_000), /send a JSON body/],
      ['input_size 4096', JSON.stringify({ file: huge }), /input_size 4096 is over the limit \(limit 1024 input side in pixels; set LORKD_MAX_INPUT/],
    ];
    for (const [what, body, re] of cases) {
      const r = await underAttack(s, `admin PUT: ${what}`, () => put(body));
      const text = await r.text();
      assert.equal(r.status, 400, `${what}: ${text}`);
      const e = (JSON.parse(text) as { error: string }).error;
      assert.ok(!e.includes('\n'), `${what}: ${e}`);
      assert.match(e, re, what);
    }
    assert.equal((await post(s.url, images[0]!)).status, 200);
  });
});

test('SIGTERM with a client part-way through its body: the drain ends at its deadline and the process exits 0', async () => {
  const { child, port, stderr, exited } = await startServeProcess(['--decomposition', checkpoint, '--drain-timeout-ms', '500']);
  try {
    // A slow client: headers and 10 of the 100000 body bytes it announced, then nothing.
    const sock = net.connect(port, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.on('error', () => {});
    sock.write(`POST /v1/predict?task=breast HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(10)}`);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr());
    const s = (Date.now() - t0) / 1000;
    console.log(`# exited ${s.toFixed(2)} s after SIGTERM (drain deadline 0.5 s)`);
    assert.ok(s < 5, `exited ${s} s after SIGTERM`);
    assert.match(stderr(), /SIGTERM: draining 1 requests in flight/);
    assert.match(stderr(), /stopped/);
    sock.destroy();
  } finally {
    child.kill('SIGKILL');
  }
});

test('serve options out of their range are one line, exit 2', () => {
  for (const [args, re] of [
    [['--port', '99999'], /^lorkd: --port must be an integer >= 0 and <= 65535, got "99999"$/],
    [['--max-body-bytes', '-1'], /^lorkd: --max-body-bytes must be an integer >= 1 and <= 1073741824, got "-1"$/],
    [['--max-wait-ms', '1e12'], /^lorkd: --max-wait-ms must be a number >= 0 and <= 60000, got "1e12"$/],
    [['--drain-timeout-ms', '-5'], /^lorkd: --drain-timeout-ms must be an integer >= 0/],
  ] as const) {
    const r = lorkd(['serve', '--decomposition', checkpoint, ...args]);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr.trim(), re);
  }
});
