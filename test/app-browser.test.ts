// The browser app in a real browser (Debian chromium driven by playwright-core), served from
// 127.0.0.1: it loads lorkd-exported .onnx experts of two departments, classifies image files
// given through its file input (MedMNIST test images as PNG, grey and RGB; a MedNIST JPEG; an
// odd-sized PNG; a file that is no image), and its table's predictions and probabilities equal
// `lorkd predict --json`'s (libtorch, from the same expert's safetensors) within 1e-4. The page
// must be cross-origin isolated (wasm threads), request nothing but its own static files, log
// no console errors, and save the same numbers as CSV. A screenshot goes to test-output/app.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { planSite } from '../src/app/site-plan.js';
import { type RunningServer, serveSite } from '../src/app/server.js';
import { type AppFixture, makeAppFixture } from './app-fixture.js';
import { lastJson, lorkdOk, REPO } from './helpers/pipeline.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (install Debian's chromium to run the browser app test)`;
const TOL = 1e-4;

interface Row {
  file: string;
  department: string;
  cls?: string;
  probs?: number[];
  error?: string;
}
interface Predicted {
  input: string;
  class: string;
  probs: Record<string, number>;
}

let dir: string;
let fx: AppFixture;
let srv: RunningServer;
let browser: Browser;
let page: Page;
const requests: string[] = [];
const consoleErrors: string[] = [];
/** lorkd predict's output per department: file basename -> prediction. */
const expected = new Map<string, Map<string, Predicted>>();

before(async () => {
  if (skip) return;
  dir = mkdtempSync(path.join(tmpdir(), 'lorkd-app-'));
  fx = makeAppFixture(dir);
  for (const e of fx.experts) {
    const out = lastJson<{ predictions: Predicted[] }>(lorkdOk(['predict', '--model', e.safetensors, ...e.images.flatMap((f) => ['--input', f]), '--json']).stdout);
    expected.set(e.meta.task, new Map(out.predictions.map((p) => [path.basename(p.input), p])));
  }
  srv = await serveSite(planSite(fx.expertsDir), { port: 0 });
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
});

after(async () => {
  await browser?.close();
  await srv?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The parts of a DOM element read in the page (this project compiles without the DOM types). */
interface RowElement {
  dataset: Record<string, string | undefined>;
  children: ArrayLike<{ textContent: string | null }>;
}

/** Fields of one CSV line (RFC 4180: quoted fields may hold commas and doubled quotes). */
function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let f = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') (f += '"'), i++;
      else if (c === '"') quoted = false;
      else f += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') out.push(f), (f = '');
    else f += c;
  }
  out.push(f);
  return out;
}

interface PageDocument {
  querySelectorAll(selector: string): { length: number };
  body: { dataset: Record<string, string | undefined> };
}

async function rows(): Promise<Row[]> {
  return page.$$eval('#results tbody tr', (trs) =>
    trs.map((el) => {
      const tr = el as unknown as RowElement;
      const d = tr.dataset;
      return {
        file: d.file!,
        department: tr.children[3]!.textContent!,
        ...(d.class !== undefined ? { cls: d.class, probs: JSON.parse(d.probs!) as number[] } : {}),
        ...(d.error !== undefined ? { error: d.error } : {}),
      };
    }),
  );
}

/** Gives files to the page's file input and waits until the table has `total` rows and the page is idle. */
async function classify(files: string[], total: number): Promise<void> {
  await page.setInputFiles('#files', files);
  await page.waitForFunction(
    (n) => {
      const doc = (globalThis as unknown as { document: PageDocument }).document;
      return doc.querySelectorAll('#results tbody tr').length === n && doc.body.dataset.busy === '0';
    },
    total,
    { timeout: 30_000 },
  );
}

function checkAgainstPredict(r: Row, task: string, classNames: string[]): void {
  const want = expected.get(task)!.get(r.file);
  assert.ok(want, `no lorkd predict row for ${r.file}`);
  assert.equal(r.error, undefined, `${r.file}: ${r.error}`);
  assert.equal(r.department, task);
  assert.equal(r.cls, want.class, `${r.file}: predicted class`);
  assert.equal(r.probs!.length, classNames.length);
  classNames.forEach((c, k) => {
    const d = Math.abs(r.probs![k]! - want.probs[c]!);
    assert.ok(d <= TOL, `${r.file} p(${c}): page ${r.probs![k]} vs lorkd predict ${want.probs[c]} (|d| = ${d.toExponential(2)})`);
  });
}

test('the page classifies files through its file input as lorkd predict does (two departments)', { skip, timeout: 120_000 }, async () => {
  await page.goto(srv.url);
  await page.waitForSelector('#runtime[data-state="ready"]', { timeout: 30_000 });
  assert.equal(await page.evaluate(() => (globalThis as unknown as { crossOriginIsolated: boolean }).crossOriginIsolated), true, 'COOP/COEP make the page cross-origin isolated (wasm threads)');
  assert.match((await page.textContent('#runtime'))!, /wasm · \d+ thread/);
  const [breast, retina] = fx.experts as [AppFixture['experts'][0], AppFixture['experts'][0]];
  assert.deepEqual(await page.$$eval('#expert option', (os) => os.map((o) => (o as unknown as { value: string }).value)), ['breastmnist', 'retinamnist']);

  await classify([...breast.images, fx.bad], breast.images.length + 1);
  let got = await rows();
  for (const r of got.slice(0, breast.images.length)) checkAgainstPredict(r, 'breastmnist', breast.meta.classNames);
  assert.deepEqual(got.map((r) => r.file), [...breast.images, fx.bad].map((f) => path.basename(f)), 'one row per file, in order');
  const bad = got[got.length - 1]!;
  assert.match(bad.error ?? '', /not-an-image\.png: not a PNG, JPEG or DICOM file/);
  // The check has teeth: the probabilities vary between images and are not saturated.
  const p0 = got.slice(0, breast.images.length).map((r) => r.probs![0]!);
  assert.ok(Math.max(...p0) - Math.min(...p0) > 0.02, `probabilities barely vary: ${p0.join(', ')}`);
  assert.ok(p0.every((p) => p > 0.01 && p < 0.99), `saturated probabilities: ${p0.join(', ')}`);

  // Another department: later files go to its expert, earlier rows keep theirs.
  await page.selectOption('#expert', 'retinamnist');
  await classify(retina.images, breast.images.length + 1 + retina.images.length);
  got = await rows();
  for (const r of got.slice(breast.images.length + 1)) checkAgainstPredict(r, 'retinamnist', retina.meta.classNames);
  assert.equal(got[0]!.department, 'breastmnist');

  // The detail view of the first row: its activation map is drawn over the image.
  await page.click('#results tbody tr:first-child');
  assert.match((await page.textContent('#detail-meta'))!, /activation map 2×2 of "/);
  assert.doesNotMatch((await page.textContent('#detail-meta'))!, /zero everywhere/);
  const outDir = path.join(REPO, 'test-output');
  mkdirSync(outDir, { recursive: true });
  await page.screenshot({ path: path.join(outDir, 'app.png'), fullPage: true });
});

test('Save as CSV writes every row with the numbers of the table', { skip, timeout: 60_000 }, async () => {
  const table = await rows();
  assert.ok(table.length > 0, 'the first test filled the table');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#csv')]);
  assert.match(download.suggestedFilename(), /^lorkd-results-.*\.csv$/);
  const text = readFileSync((await download.path())!, 'utf8');
  const lines = text.trimEnd().split('\r\n');
  assert.equal(lines.length, table.length + 1);
  const header = lines[0]!;
  assert.equal(header, 'file,department,model,prediction,probability,p(malignant),"p(normal, benign)",p(0),p(1),p(2),p(3),p(4),error');
  table.forEach((r, i) => {
    const f = parseCsvLine(lines[i + 1]!);
    assert.equal(f.length, 13, lines[i + 1]);
    assert.equal(f[0], r.file);
    assert.equal(f[1], r.department);
    if (r.error) return assert.equal(f[12], r.error);
    assert.equal(f[3], r.cls);
    const classes = r.department === 'breastmnist' ? [5, 6] : [7, 8, 9, 10, 11];
    classes.forEach((col, k) => assert.equal(Number(f[col]), r.probs![k]));
    assert.equal(Number(f[4]), Math.max(...r.probs!));
  });
});

test('the page made no request except for its own static files, and logged no errors', { skip }, () => {
  assert.ok(requests.length > 0);
  const foreign = requests.filter((u) => !u.startsWith(srv.url) && !u.startsWith('blob:') && !u.startsWith('data:'));
  assert.deepEqual(foreign, [], 'requests outside the site');
  const sitePaths = requests.filter((u) => u.startsWith(srv.url)).map((u) => u.slice(srv.url.length).replace(/[?#].*$/, '') || 'index.html');
  const plan = planSite(fx.expertsDir);
  assert.deepEqual(sitePaths.filter((p) => !plan.files.has(p)), [], 'requests for files the site does not have');
  assert.ok(sitePaths.includes('vendor/ort-wasm-simd-threaded.wasm'));
  assert.deepEqual(consoleErrors, []);
});
