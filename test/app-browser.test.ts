// The browser app in a real browser (Debian chromium driven by playwright-core), served from
// 127.0.0.1: it loads lorkd-exported .onnx experts of two departments, classifies image files
// given through its file input (MedMNIST test images as PNG, grey and RGB; a MedNIST JPEG; an
// odd-sized PNG; DICOM fixtures, native and compressed (JPEG-LS, JPEG 2000, JPEG Lossless, HTJ2K:
// the page loads the WASM codecs it needs); a DICOM it cannot decode; a file that is no image),
// and its table's predictions and probabilities equal `lorkd predict --json`'s (libtorch, from the
// same expert's safetensors; DICOM through lorkd's reader and model in-process) within 1e-4. The page
// must be cross-origin isolated (wasm threads), request nothing but its own static files, log
// no console errors, and save the same numbers as CSV. A screenshot goes to test-output/app.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { noGrad, softmax, tidy } from '../src/tensor/index.js';
import { loadExpertFile } from '../src/export/expert-file.js';
import { preprocess } from '../src/export/predict.js';
import { readAnyImage } from '../src/data/dicom.js';
import { planSite } from '../src/app/site-plan.js';
import { type RunningServer, serveSite } from '../src/app/server.js';
import { type AppFixture, makeAppFixture } from './app-fixture.js';
import { lastJson, lorkdOk, REPO } from './helpers/pipeline.js';

const CHROMIUM = '/usr/bin/chromium';
const hasPlaywright = ((): boolean => {
  try {
    createRequire(import.meta.url).resolve('playwright-core');
    return true;
  } catch {
    return false;
  }
})();
const skip = !existsSync(CHROMIUM)
  ? `${CHROMIUM} is missing (install Debian's chromium to run the browser app test)`
  : !hasPlaywright
    ? 'the npm package playwright-core is not installed (npm ci installs it)'
    : false;
const TOL = 1e-4;
const DICOM_DIR = path.join(REPO, 'test', 'fixtures', 'dicom');
/** DICOM files the page reads (16-bit signed with rescale, RLE, deflated, MONOCHROME1, the compressed syntaxes, 12-bit JPEG Extended). */
const DICOM = [
  'CT_small.dcm',
  'MR_small_RLE.dcm',
  'image_dfl.dcm',
  'MR_small_monochrome1.dcm',
  'MR_small_jpeg_ls_lossless.dcm',
  'MR_small_jp2klossless.dcm',
  'MR_small_jpeg_lossless.dcm',
  'MR_small_htj2k_lossless.dcm',
  'MR_small_jpeg_extended12.dcm',
].map((f) => path.join(DICOM_DIR, f));
/** One it refuses (made in before()): the JPEG-LS fixture with its UID changed to JPIP's (no pixel codec), same length. */
let DICOM_UNSUPPORTED: string;

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
  DICOM_UNSUPPORTED = path.join(dir, 'MR_small_jpip.dcm');
  writeFileSync(DICOM_UNSUPPORTED, Buffer.from(readFileSync(path.join(DICOM_DIR, 'MR_small_jpeg_ls_lossless.dcm')).toString('latin1').replaceAll('1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.94'), 'latin1'));
  for (const e of fx.experts) {
    const out = lastJson<{ predictions: Predicted[] }>(lorkdOk(['predict', '--model', e.safetensors, ...e.images.flatMap((f) => ['--input', f]), '--json']).stdout);
    expected.set(e.meta.task, new Map(out.predictions.map((p) => [path.basename(p.input), p])));
  }
  // lorkd predict reads PNG/JPEG; DICOM goes through lorkd's own reader, preprocessing and model here.
  const breast = fx.experts[0]!;
  const { model, meta } = loadExpertFile(breast.safetensors);
  try {
    for (const f of DICOM) {
      const im = readAnyImage(f);
      const p = tidy(() => noGrad(() => softmax(model.forward(preprocess(meta, im.data, 1, im.height, im.width)), 1).toArray() as Float32Array));
      const best = p.indexOf(Math.max(...p));
      expected.get(meta.task)!.set(path.basename(f), { input: f, class: meta.classNames[best]!, probs: Object.fromEntries(meta.classNames.map((c, k) => [c, p[k]!])) });
    }
  } finally {
    model.dispose();
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

/** Waits until the table has `total` rows and the page is idle. */
async function waitForRows(total: number): Promise<void> {
  await page.waitForFunction(
    (n) => {
      const doc = (globalThis as unknown as { document: PageDocument }).document;
      return doc.querySelectorAll('#results tbody tr').length === n && doc.body.dataset.busy === '0';
    },
    total,
    { timeout: 30_000 },
  );
}

/** Gives files to the page's file input and waits until the table has `total` rows and the page is idle. */
async function classify(files: string[], total: number): Promise<void> {
  await page.setInputFiles('#files', files);
  await waitForRows(total);
}

/** The largest |page - lorkd| probability difference seen (reported as a diagnostic). */
let worst = 0;

function checkAgainstPredict(r: Row, task: string, classNames: string[]): void {
  const want = expected.get(task)!.get(path.basename(r.file));
  assert.ok(want, `no lorkd predict row for ${r.file}`);
  assert.equal(r.error, undefined, `${r.file}: ${r.error}`);
  assert.equal(r.department, task);
  assert.equal(r.cls, want.class, `${r.file}: predicted class`);
  assert.equal(r.probs!.length, classNames.length);
  classNames.forEach((c, k) => {
    const d = Math.abs(r.probs![k]! - want.probs[c]!);
    worst = Math.max(worst, d);
    assert.ok(d <= TOL, `${r.file} p(${c}): page ${r.probs![k]} vs lorkd predict ${want.probs[c]} (|d| = ${d.toExponential(2)})`);
  });
}

test('the page classifies files through its file input as lorkd predict does (two departments)', { skip, timeout: 120_000 }, async (t) => {
  await page.goto(srv.url);
  await page.waitForSelector('#runtime[data-state="ready"]', { timeout: 30_000 });
  assert.equal(await page.evaluate(() => (globalThis as unknown as { crossOriginIsolated: boolean }).crossOriginIsolated), true, 'COOP/COEP make the page cross-origin isolated (wasm threads)');
  assert.match((await page.textContent('#runtime'))!, /wasm · \d+ thread/);
  const [breast, retina] = fx.experts as [AppFixture['experts'][0], AppFixture['experts'][0]];
  assert.deepEqual(await page.$$eval('#expert option', (os) => os.map((o) => (o as unknown as { value: string }).value)), ['breastmnist', 'retinamnist']);

  const first = [...breast.images, ...DICOM, DICOM_UNSUPPORTED, fx.bad];
  const good = breast.images.length + DICOM.length;
  await classify(first, first.length);
  let got = await rows();
  for (const r of got.slice(0, good)) checkAgainstPredict(r, 'breastmnist', breast.meta.classNames);
  assert.deepEqual(got.map((r) => r.file), first.map((f) => path.basename(f)), 'one row per file, in order');
  assert.match(got[good]!.error ?? '', /MR_small_jpip\.dcm: unsupported transfer syntax unknown \(1\.2\.840\.10008\.1\.2\.4\.94\)/);
  assert.match(got[good + 1]!.error ?? '', /not-an-image\.png: not a PNG, JPEG or DICOM file/);
  // The check has teeth: the probabilities vary between images and are not saturated.
  const p0 = got.slice(0, good).map((r) => r.probs![0]!);
  assert.ok(Math.max(...p0) - Math.min(...p0) > 0.02, `probabilities barely vary: ${p0.join(', ')}`);
  assert.ok(p0.every((p) => p > 0.01 && p < 0.99), `saturated probabilities: ${p0.join(', ')}`);

  // Another department: later files go to its expert, earlier rows keep theirs.
  await page.selectOption('#expert', 'retinamnist');
  await classify(retina.images, first.length + retina.images.length);
  got = await rows();
  for (const r of got.slice(first.length)) checkAgainstPredict(r, 'retinamnist', retina.meta.classNames);
  assert.equal(got[0]!.department, 'breastmnist');

  // The detail view of a row (the CT slice): its activation map is drawn over the image.
  await page.click(`#results tbody tr:nth-child(${breast.images.length + 1})`);
  assert.equal(await page.textContent('#detail-name'), 'CT_small.dcm');
  assert.match((await page.textContent('#detail-meta'))!, /^DICOM 128×128 · breastmnist expert · activation map 2×2 of "/);
  assert.doesNotMatch((await page.textContent('#detail-meta'))!, /zero everywhere/);
  await page.waitForSelector('#view[data-shown="CT_small.dcm"]', { timeout: 10_000 });
  // The map really is drawn: the canvas changes with its opacity.
  const canvasAt = (opacity: string) =>
    page.evaluate(async (o) => {
      const doc = (globalThis as unknown as { document: { getElementById(id: string): { value: string; dispatchEvent(e: unknown): void; toDataURL(): string } } }).document;
      const slider = doc.getElementById('opacity');
      slider.value = o;
      slider.dispatchEvent(new (globalThis as unknown as { Event: new (t: string) => unknown }).Event('input'));
      return doc.getElementById('view').toDataURL();
    }, opacity);
  const plain = await canvasAt('0');
  assert.notEqual(await canvasAt('50'), plain, 'the activation map changes the picture');
  assert.equal(await canvasAt('0'), plain);
  await canvasAt('50');
  const outDir = path.join(REPO, 'test-output');
  mkdirSync(outDir, { recursive: true });
  await page.screenshot({ path: path.join(outDir, 'app.png'), fullPage: true });
  t.diagnostic(`largest |page - lorkd| probability difference: ${worst.toExponential(2)} over ${got.length - 2} files`);
});

test('a chosen folder is read recursively (hidden files and other types skipped), in path order', { skip, timeout: 60_000 }, async () => {
  const before = (await rows()).length;
  const root = path.join(dir, 'ward-7');
  const breast = fx.experts[0]!;
  mkdirSync(path.join(root, 'b-second'), { recursive: true });
  mkdirSync(path.join(root, 'a-first'), { recursive: true });
  copyFileSync(breast.images[3]!, path.join(root, 'b-second', path.basename(breast.images[3]!)));
  copyFileSync(breast.images[0]!, path.join(root, 'a-first', path.basename(breast.images[0]!)));
  copyFileSync(DICOM[0]!, path.join(root, 'a-first', 'CT_small.dcm'));
  writeFileSync(path.join(root, 'notes.txt'), 'not an image');
  copyFileSync(breast.images[1]!, path.join(root, '.hidden.png'));
  await page.selectOption('#expert', 'breastmnist');
  await page.setInputFiles('#folder', root);
  await waitForRows(before + 3);
  const got = (await rows()).slice(before);
  assert.deepEqual(got.map((r) => r.file), ['ward-7/a-first/CT_small.dcm', 'ward-7/a-first/breastmnist-test-0.png', 'ward-7/b-second/mednist-hand.jpeg']);
  // Copies of files classified before: the same numbers as lorkd's.
  for (const r of got) checkAgainstPredict(r, 'breastmnist', breast.meta.classNames);
  assert.match((await page.textContent('#progress-text'))!, /3 files done/);
});

/** What the drop test uses of the page's window (this project compiles without the DOM types). */
interface DropWindow {
  DataTransfer: new () => { items: { add(f: unknown): void } };
  File: new (parts: unknown[], name: string, o: { type: string }) => unknown;
  DragEvent: new (type: string, init: { dataTransfer: unknown; bubbles: boolean; cancelable: boolean }) => unknown;
  document: { getElementById(id: string): { dispatchEvent(e: unknown): boolean } };
  atob(s: string): string;
}

test('files dropped on the drop zone are classified', { skip, timeout: 60_000 }, async () => {
  const before = (await rows()).length;
  const f = fx.experts[0]!.images[1]!;
  await page.evaluate(
    ({ b64, name }) => {
      const w = globalThis as unknown as DropWindow;
      const bytes = Uint8Array.from(w.atob(b64), (c) => c.charCodeAt(0));
      const dt = new w.DataTransfer();
      dt.items.add(new w.File([bytes], name, { type: 'image/png' }));
      w.document.getElementById('drop').dispatchEvent(new w.DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    },
    { b64: readFileSync(f).toString('base64'), name: path.basename(f) },
  );
  await waitForRows(before + 1);
  const r = (await rows())[before]!;
  assert.equal(r.file, path.basename(f));
  checkAgainstPredict(r, 'breastmnist', fx.experts[0]!.meta.classNames);
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
  // Clear empties the table and disables saving.
  await page.click('#clear');
  assert.equal((await rows()).length, 0);
  assert.equal(await page.isDisabled('#csv'), true);
  assert.equal(await page.isVisible('#empty'), true);
});

test('the page made no request except for its own static files, and logged no errors', { skip }, () => {
  assert.ok(requests.length > 0);
  const foreign = requests.filter((u) => !u.startsWith(srv.url) && !u.startsWith('blob:') && !u.startsWith('data:'));
  assert.deepEqual(foreign, [], 'requests outside the site');
  const sitePaths = requests.filter((u) => u.startsWith(srv.url)).map((u) => u.slice(srv.url.length).replace(/[?#].*$/, '') || 'index.html');
  const plan = planSite(fx.expertsDir);
  assert.deepEqual(sitePaths.filter((p) => !plan.files.has(p)), [], 'requests for files the site does not have');
  // the compressed DICOM files made the page fetch their codecs, each once
  for (const p of ['vendor/charlswasm_decode.js', 'vendor/charlswasm_decode.wasm', 'vendor/openjpegwasm_decode.wasm', 'vendor/openjphjs.wasm', 'vendor/lossless.js', 'vendor/dicom-decoders.js', 'vendor/jpeg12.js']) {
    assert.equal(sitePaths.filter((q) => q === p).length, 1, `${p} requested once`);
  }
  assert.ok(sitePaths.includes('vendor/ort-wasm-simd-threaded.wasm'));
  assert.deepEqual(consoleErrors, []);
});
