// The browser app without a browser: the ONNX header reader against protobufjs and the onnx
// schema; the page's preprocessing against lorkd's (libtorch); the page's DICOM reader against
// lorkd's Node reader on every DICOM fixture; the page's CSV and CAM helpers; the site plan,
// its writer and the static server (headers, content types, traversal refused); `lorkd app`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { crc32, deflateSync, inflateRawSync, inflateSync } from 'node:zlib';
import { manualSeed, UserError } from '../src/tensor/index.js';
import { createModel } from '../src/models/index.js';
import type { ExpertMeta } from '../src/export/expert-file.js';
import { preprocess } from '../src/export/predict.js';
import { decodeImage } from '../src/data/images.js';
import { decodeModel, encodeModel, expertToOnnx, onnxMetadata } from '../src/export/onnx/index.js';
import { readOnnxHeader } from '../src/app/onnx-metadata.js';
import { scanExperts } from '../src/app/experts.js';
import { planSite, readSiteFile, writeSite } from '../src/app/site-plan.js';
import { type RunningServer, serveSite, sitePath } from '../src/app/server.js';
import { makeAppFixture, type AppFixture } from './app-fixture.js';
import { BIN, lorkd, lorkdEnv, REPO } from './helpers/pipeline.js';
import { lcg } from './helpers/random.js';

const SITE = path.join(REPO, 'src', 'app', 'site');
const siteModule = <T>(f: string): Promise<T> => import(pathToFileURL(path.join(SITE, f)).href) as Promise<T>;

interface PreprocessModule {
  toInput(rgb: Uint8Array, height: number, width: number, pre: { input_size: number; mean: number[]; std: number[] }): Float32Array;
  softmax(logits: ArrayLike<number>): number[];
  argmax(p: ArrayLike<number>): number;
}
interface CsvModule {
  csvField(v: unknown): string;
  toCsv(header: unknown[], rows: unknown[][]): string;
}
interface CamModule {
  normaliseCam(cam: ArrayLike<number>): Float32Array & { max: number };
  heatColour(t: number): [number, number, number];
}
interface PngModule {
  decodePng(bytes: Uint8Array, name: string, inflate: (b: Uint8Array) => Uint8Array): { width: number; height: number; data: Uint8Array; grey: boolean };
}
interface DicomModule {
  decodeDicom(bytes: Uint8Array, name: string, deps: unknown): Promise<{ width: number; height: number; data: Uint8Array; grey: boolean; transferSyntax: string }>;
}

let dir: string;
let fx: AppFixture;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'lorkd-app-site-'));
  fx = makeAppFixture(dir);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const META: ExpertMeta = {
  model: 'shufflenet_v2_x0_5',
  task: 'toy, "quoted"',
  classNames: ['a', 'b', 'c'],
  inputSize: 32,
  channels: 3,
  resize: 'bilinear',
  mean: [0.45, 0.5, 0.55],
  std: [0.2, 0.25, 0.3],
};

test('readOnnxHeader reads the metadata and graph names the exporter wrote (checked with protobufjs)', () => {
  manualSeed(0);
  const m = createModel(META.model, { numClasses: 3 });
  const bytes = expertToOnnx(m, META);
  m.dispose();
  const h = readOnnxHeader(bytes);
  assert.deepEqual(h.metadata, onnxMetadata(META));
  const decoded = decodeModel(bytes) as { metadata_props: { key: string; value: string }[]; graph: { input: { name: string }[]; output: { name: string }[] } };
  assert.deepEqual(h.metadata, Object.fromEntries(decoded.metadata_props.map((p) => [p.key, p.value])));
  assert.deepEqual(h.inputs, decoded.graph.input.map((v) => v.name));
  assert.deepEqual(h.outputs, decoded.graph.output.map((v) => v.name));
  assert.deepEqual(h.outputs, ['logits', 'cam']);
  assert.ok(h.inputs.includes('input'));
  // Truncated and foreign bytes are one-line UserErrors, never a crash.
  assert.throws(() => readOnnxHeader(bytes.subarray(0, bytes.length - 7), 'cut.onnx'), (e: Error) => e instanceof UserError && /^cut\.onnx: not a readable ONNX model/.test(e.message));
  assert.throws(() => readOnnxHeader(new TextEncoder().encode('{"not": "onnx"}'), 'x.onnx'), UserError);
});

test("the page's preprocessing equals lorkd's (libtorch bilinear resize, align_corners=False) within 1e-6", async () => {
  const { toInput } = await siteModule<PreprocessModule>('preprocess.js');
  const pre = { input_size: META.inputSize, mean: META.mean, std: META.std };
  const r = lcg(3);
  for (const [h, w] of [[28, 28], [32, 32], [45, 70], [100, 37], [1, 1], [7, 300]] as const) {
    const bytes = Uint8Array.from({ length: 3 * h * w }, () => Math.floor(r() * 256));
    const want = preprocess(META, bytes, 1, h, w);
    const ref = want.toArray() as Float32Array;
    want.dispose();
    const got = toInput(bytes, h, w, pre);
    assert.equal(got.length, ref.length);
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - ref[i]!));
    assert.ok(worst < 1e-6, `${h}x${w}: max |page - lorkd| = ${worst}`);
  }
});

test('softmax, argmax, CSV quoting and CAM normalisation of the page', async () => {
  const { softmax, argmax } = await siteModule<PreprocessModule>('preprocess.js');
  const p = softmax([1, 3, 2]);
  const e = [1, 3, 2].map(Math.exp);
  p.forEach((v, k) => assert.ok(Math.abs(v - e[k]! / (e[0]! + e[1]! + e[2]!)) < 1e-15));
  assert.equal(argmax(p), 1);
  assert.equal(argmax([0.5, 0.5]), 0, 'the first on ties, as lorkd predict');
  const softBig = softmax([1000, 1001]);
  assert.ok(Number.isFinite(softBig[0]!) && Math.abs(softBig[1]! - 1 / (1 + Math.exp(-1))) < 1e-12);
  const { csvField, toCsv } = await siteModule<CsvModule>('csv.js');
  assert.equal(csvField('normal, benign'), '"normal, benign"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('=HYPERLINK("x")'), `"'=HYPERLINK(""x"")"`);
  assert.equal(csvField(0.25), '0.25');
  assert.equal(csvField(-1), '-1', 'numbers are not treated as formulas');
  assert.equal(toCsv(['a', 'b'], [[1, 'x\ny']]), 'a,b\r\n1,"x\ny"\r\n');
  const { normaliseCam, heatColour } = await siteModule<CamModule>('cam.js');
  const n = normaliseCam([-1, 0, 2, 4]);
  assert.deepEqual([...n], [0, 0, 0.5, 1]);
  assert.equal(n.max, 4);
  assert.equal(normaliseCam([-3, -1]).max, 0);
  assert.deepEqual(heatColour(0), [0, 0, 128]);
  assert.deepEqual(heatColour(1), [128, 0, 0]);
});

/** A PNG written here (not by pngjs): rows of raw samples, any colour type and depth, optionally Adam7, with extra chunks. */
function writePng(w: number, h: number, colorType: number, depth: number, sample: (x: number, y: number, c: number) => number, o: { interlace?: boolean; chunks?: [string, Uint8Array][] } = {}): Uint8Array {
  const ch = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colorType]!;
  const passes = o.interlace ? [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]] : [[0, 0, 1, 1]];
  const raw: number[] = [];
  let filter = 0;
  for (const [x0, y0, dx, dy] of passes as [number, number, number, number][]) {
    const xs: number[] = [];
    for (let x = x0; x < w; x += dx) xs.push(x);
    if (xs.length === 0) continue;
    for (let y = y0; y < h; y += dy) {
      // Bits of the row, then the bytes; filters cycle 0..4 (encoded properly below).
      const bits: number[] = [];
      for (const x of xs) for (let c = 0; c < ch; c++) {
        const v = sample(x, y, c);
        for (let b = depth - 1; b >= 0; b--) bits.push((v >> b) & 1);
      }
      while (bits.length % 8) bits.push(0);
      const row = Array.from({ length: bits.length / 8 }, (_, i) => bits.slice(8 * i, 8 * i + 8).reduce((a, b) => 2 * a + b, 0));
      raw.push(filter % 2 === 0 ? 0 : 1); // None or Sub
      const bpp = Math.max(1, (ch * depth) >> 3);
      raw.push(...(filter % 2 === 0 ? row : row.map((v, i) => (v - (i >= bpp ? row[i - bpp]! : 0)) & 0xff)));
      filter++;
    }
  }
  const chunk = (type: string, data: Uint8Array): Buffer => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([depth, colorType, 0, 0, o.interlace ? 1 : 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...(o.chunks ?? []).map(([t, d]) => chunk(t, d)),
    chunk('IDAT', deflateSync(Buffer.from(raw))),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

test("the page's PNG decoder gives lorkd's (pngjs's) pixels: every colour type and depth, Adam7, palettes, tRNS, alpha", async () => {
  const { decodePng } = await siteModule<PngModule>('png.js');
  const r = lcg(11);
  const rnd = (max: number) => Math.floor(r() * (max + 1));
  const be16 = (...v: number[]) => Uint8Array.from(v.flatMap((x) => [x >> 8, x & 0xff]));
  const cases: [string, Uint8Array][] = [];
  for (const [ct, depths] of [[0, [1, 2, 4, 8, 16]], [2, [8, 16]], [3, [1, 2, 4, 8]], [4, [8, 16]], [6, [8, 16]]] as [number, number[]][]) {
    for (const depth of depths) {
      for (const interlace of [false, true]) {
        const max = ct === 3 ? Math.min(2 ** depth, 5) - 1 : 2 ** depth - 1;
        // Sample values fixed per pixel so the tRNS colour below really occurs.
        const vals = new Map<string, number>();
        const sample = (x: number, y: number, c: number) => {
          const k = `${x},${y},${c}`;
          if (!vals.has(k)) vals.set(k, (x + y) % 7 === 0 ? 1 : rnd(max));
          return vals.get(k)!;
        };
        const chunks: [string, Uint8Array][] = [];
        if (ct === 3) chunks.push(['PLTE', Uint8Array.from({ length: 15 }, () => rnd(255))], ['tRNS', Uint8Array.from([0, 128])]);
        if (ct === 0) chunks.push(['tRNS', be16(1)]);
        if (ct === 2) chunks.push(['tRNS', be16(1, 1, 1)]);
        chunks.push(['gAMA', be16(0, 45455)]);
        cases.push([`ct${ct}-d${depth}${interlace ? '-adam7' : ''}`, writePng(13, 11, ct, depth, sample, { interlace, chunks })]);
      }
    }
  }
  for (const [name, png] of cases) {
    const want = decodeImage(png, name);
    const got = decodePng(new Uint8Array(png), name, (b) => new Uint8Array(inflateSync(b)));
    assert.deepEqual([got.width, got.height, got.grey], [want.width, want.height, want.grey], name);
    assert.ok(Buffer.from(got.data).equals(Buffer.from(want.data)), `${name}: pixels differ from lorkd's`);
  }
  // The fixture's PNGs (written by pngjs) too, and corrupt files are one-line errors.
  for (const f of [...fx.experts.flatMap((e) => e.images.filter((i) => i.endsWith('.png')))]) {
    const b = readFileSync(f);
    assert.ok(Buffer.from(decodePng(new Uint8Array(b), f, (x) => new Uint8Array(inflateSync(x))).data).equals(Buffer.from(decodeImage(b, f).data)), f);
  }
  const good = cases[0]![1];
  const flipped = Uint8Array.from(good);
  flipped[40] = flipped[40]! ^ 0xff;
  assert.throws(() => decodePng(flipped, 'x.png', (b) => new Uint8Array(inflateSync(b))), /^Error: x\.png: corrupt or unsupported PNG \(bad CRC in chunk /);
  assert.throws(() => decodePng(good.subarray(0, 60), 'y.png', (b) => new Uint8Array(inflateSync(b))), /^Error: y\.png: corrupt or unsupported PNG/);
  // A header claiming 10000 x 10000 pixels is refused before anything is inflated.
  const huge = Buffer.from(good);
  huge.writeUInt32BE(10_000, 16);
  huge.writeUInt32BE(10_000, 20);
  huge.writeUInt32BE(crc32(huge.subarray(12, 29)), 29);
  assert.throws(() => decodePng(new Uint8Array(huge), 'big.png', () => assert.fail('inflated')), /^Error: big\.png: corrupt or unsupported PNG \(a 10000x10000 image is larger than the app decodes/);
});

const DICOM_DIR = path.join(REPO, 'test', 'fixtures', 'dicom');
const DICOM_PIXELS = path.join(REPO, 'dist', 'src', 'data', 'dicom-pixels.js');
const dicomSkip = existsSync(DICOM_DIR) && existsSync(DICOM_PIXELS) ? false : 'the DICOM fixtures or lorkd\'s dicom-pixels module are missing';
/** pydicom's test files (Debian python3-pydicom), when installed: more JPEG Baseline, Extended, Lossless and JPEG 2000 files. */
const PYDICOM_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

/**
 * The page's codecs (site/codecs.js over the site's vendor/dicom-decoders.js), loading every file
 * from where the site plan takes it: the emscripten glue as the CommonJS it also is, the binaries
 * and the ES modules as they are. Also checks that the plan serves each file the page asks for.
 */
async function pageCodecsFromPlan(plan: ReturnType<typeof planSite>): Promise<unknown> {
  const source = (p: string): string => {
    const f = plan.files.get(p);
    assert.ok(f && 'source' in f, `the site lacks ${p}`);
    return f.source;
  };
  const { pageCodecs } = await siteModule<{ pageCodecs(decoders: unknown, env: unknown): unknown }>('codecs.js');
  const decoders = (await import(pathToFileURL(source('vendor/dicom-decoders.js')).href)) as unknown;
  const loaded: string[] = [];
  const env = {
    script: async (p: string) => (loaded.push(p), createRequire(import.meta.url)(source(p)) as unknown),
    bytes: async (p: string) => (loaded.push(p), new Uint8Array(readFileSync(source(p)))),
    module: async (p: string) => (loaded.push(p), (await import(pathToFileURL(source(p)).href)) as unknown),
  };
  return Object.assign(pageCodecs(decoders, env) as object, { loaded });
}

test("the page's DICOM reader gives lorkd's pixels (or its error) for every DICOM fixture, compressed ones through the page's codecs", { skip: dicomSkip }, async () => {
  const { decodeDicom } = await siteModule<DicomModule>('dicom.js');
  const parser = createRequire(import.meta.url)('dicom-parser') as unknown;
  const pixels = (await import(pathToFileURL(DICOM_PIXELS).href)) as unknown;
  const { decodeAnyImage } = (await import(pathToFileURL(path.join(REPO, 'dist', 'src', 'data', 'dicom.js')).href)) as {
    decodeAnyImage(b: Uint8Array, n: string): { width: number; height: number; data: Uint8Array };
  };
  const codecs = (await pageCodecsFromPlan(planSite(fx.expertsDir))) as { loaded: string[] };
  const deps = { parser, pixels, inflateRaw: (b: Uint8Array) => new Uint8Array(inflateRawSync(b)), codecs };
  const files = readdirSync(DICOM_DIR).filter((f) => f.endsWith('.dcm')).map((f) => path.join(DICOM_DIR, f));
  assert.ok(files.length >= 5);
  if (existsSync(PYDICOM_FILES)) {
    for (const f of ['SC_rgb_jpeg_dcmtk.dcm', 'SC_rgb_small_odd_jpeg.dcm', 'JPEG2000.dcm', 'JPGExtended.dcm', 'JPEG-lossy.dcm', 'SC_rgb_jpeg_gdcm.dcm', 'GDCMJ2K_TextGBR.dcm']) {
      if (existsSync(path.join(PYDICOM_FILES, f))) files.push(path.join(PYDICOM_FILES, f));
    }
  }
  let decoded = 0;
  const syntaxes = new Set<string>();
  for (const file of files) {
    const f = path.basename(file);
    // lorkd reads a file as a Buffer (readAnyImage); the page has a plain Uint8Array.
    const buf = readFileSync(file);
    const bytes = new Uint8Array(buf);
    let want: { width: number; height: number; data: Uint8Array } | Error;
    try {
      want = decodeAnyImage(buf, f);
    } catch (e) {
      want = e as Error;
    }
    if (want instanceof Error) {
      await assert.rejects(decodeDicom(bytes, f, deps), (e: Error) => e.message === (want as Error).message, `${f}: lorkd says "${(want as Error).message}"`);
      continue;
    }
    const got = await decodeDicom(bytes, f, deps);
    assert.equal(got.width, want.width, f);
    assert.equal(got.height, want.height, f);
    assert.ok(Buffer.from(got.data).equals(Buffer.from(want.data)), `${f}: pixels differ from lorkd's`);
    syntaxes.add(got.transferSyntax);
    decoded++;
  }
  assert.ok(decoded >= 5, `only ${decoded} fixtures decoded`);
  // The committed fixtures alone reach every codec family the page loads.
  for (const s of ['JPEG-LS Lossless Image Compression', 'JPEG 2000 Image Compression (Lossless Only)', 'High-Throughput JPEG 2000 Image Compression (Lossless Only)', 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])']) {
    assert.ok(syntaxes.has(s), `no fixture decoded as ${s}`);
  }
  for (const p of ['vendor/charlswasm_decode.js', 'vendor/charlswasm_decode.wasm', 'vendor/openjpegwasm_decode.wasm', 'vendor/openjphjs.wasm', 'vendor/lossless.js']) assert.ok(codecs.loaded.includes(p), `the page never loaded ${p}`);
  assert.equal(new Set(codecs.loaded).size, codecs.loaded.length, 'each codec file is loaded once');
  // Without the codecs (an app built before lorkd's decoder module existed) they are refused by name, in one line.
  const jls = new Uint8Array(readFileSync(path.join(DICOM_DIR, 'MR_small_jpeg_ls_lossless.dcm')));
  await assert.rejects(decodeDicom(jls, 'x.dcm', { ...deps, codecs: undefined }), (e: Error) => /^x\.dcm: unsupported transfer syntax JPEG-LS Lossless Image Compression \(1\.2\.840\.10008\.1\.2\.4\.80\)/.test(e.message) && !e.message.includes('\n'));
});

test("a codec that fails to load is a one-line error naming it, and is tried again on the next file", { skip: dicomSkip }, async () => {
  const { decodeDicom } = await siteModule<DicomModule>('dicom.js');
  const { pageCodecs } = await siteModule<{ pageCodecs(decoders: unknown, env: unknown): unknown }>('codecs.js');
  const decoders = (await import(pathToFileURL(path.join(REPO, 'dist', 'src', 'data', 'dicom-decoders.js')).href)) as unknown;
  const plan = planSite(fx.expertsDir);
  let tries = 0;
  const env = {
    script: async (p: string) => createRequire(import.meta.url)((plan.files.get(p) as { source: string }).source) as unknown,
    bytes: async (p: string) => {
      if (tries++ === 0) throw new Error(`${p}: HTTP 404`);
      return new Uint8Array(readFileSync((plan.files.get(p) as { source: string }).source));
    },
    module: async () => assert.fail('no JPEG Lossless file here'),
  };
  const deps = { parser: createRequire(import.meta.url)('dicom-parser') as unknown, pixels: (await import(pathToFileURL(DICOM_PIXELS).href)) as unknown, inflateRaw: () => assert.fail(), codecs: pageCodecs(decoders, env) };
  const jls = new Uint8Array(readFileSync(path.join(DICOM_DIR, 'MR_small_jpeg_ls_lossless.dcm')));
  await assert.rejects(decodeDicom(jls, 'a.dcm', deps), (e: Error) => e.message === 'a.dcm: the JPEG-LS decoder did not load (vendor/charlswasm_decode.wasm: HTTP 404)');
  const img = await decodeDicom(jls, 'b.dcm', deps);
  assert.equal(img.width, 64);
});

test('the site plan holds the page, the vendored runtime and the experts; writeSite copies it and refuses foreign folders', () => {
  const plan = planSite(fx.expertsDir);
  for (const f of ['index.html', 'app.js', 'vendor/ort.wasm.min.mjs', 'vendor/ort-wasm-simd-threaded.wasm', 'vendor/jpeg-decoder.js', 'vendor/dicomParser.min.js', 'vendor/dicom-decoders.js', 'vendor/jpeg12.js', 'vendor/openjphjs.wasm', 'vendor/LICENSE.cornerstonejs-codec-openjph.txt', 'vendor/NOTICE.txt', 'models/manifest.json', 'models/breastmnist.onnx', 'models/retinamnist.onnx']) {
    assert.ok(plan.files.has(f), `plan lacks ${f}`);
  }
  // Every module the page imports, and every script it loads, is in the plan.
  for (const f of ['index.html', 'app.js', 'decode.js', 'codecs.js']) {
    const src = readFileSync(path.join(SITE, f), 'utf8');
    for (const m of src.matchAll(/(?:from |import\(|src=)['"]\.?\/?([^'"]+)['"]/g)) assert.ok(plan.files.has(m[1]!), `${f} loads ${m[1]}, which the site lacks`);
  }
  const manifest = JSON.parse(new TextDecoder().decode(readSiteFile(plan.files.get('models/manifest.json')!))) as typeof plan.manifest;
  assert.deepEqual(manifest, plan.manifest);
  assert.deepEqual(manifest.experts.map((e) => [e.id, e.task, e.model, e.input_size, e.class_names]), fx.experts.map((e) => [e.meta.task, e.meta.task, e.meta.model, e.meta.inputSize, e.meta.classNames]));
  const out = path.join(dir, 'site');
  writeSite(plan, out);
  for (const [rel, f] of plan.files) assert.ok(Buffer.from(readFileSync(path.join(out, rel))).equals(Buffer.from(readSiteFile(f))), `${rel} differs`);
  writeFileSync(path.join(out, 'stale.txt'), 'from an older build');
  writeSite(plan, out);
  assert.equal(existsSync(path.join(out, 'stale.txt')), false, 'a rebuild replaces the old site');
  const foreign = path.join(dir, 'foreign');
  mkdirSync(foreign);
  writeFileSync(path.join(foreign, 'thesis.tex'), 'precious');
  assert.throws(() => writeSite(plan, foreign), /is not empty and is not a lorkd app site/);
  assert.equal(readFileSync(path.join(foreign, 'thesis.tex'), 'utf8'), 'precious');
});

test('experts that break the export contract are one-line errors', () => {
  const bad = path.join(dir, 'bad-experts');
  mkdirSync(bad);
  assert.throws(() => scanExperts(bad), /no \.onnx experts in the folder/);
  assert.throws(() => scanExperts(path.join(dir, 'missing')), /cannot read experts folder \(ENOENT\)/);
  writeFileSync(path.join(bad, 'junk.onnx'), 'not a model at all, just text');
  assert.throws(() => scanExperts(bad), (e: Error) => e instanceof UserError && /junk\.onnx: not a readable ONNX model/.test(e.message));
  rmSync(path.join(bad, 'junk.onnx'));
  const model = decodeModel(readFileSync(fx.experts[0]!.onnx)) as Record<string, unknown> & { metadata_props: { key: string; value: string }[] };
  const strip = (k: string) => ({ ...model, metadata_props: model.metadata_props.filter((p) => p.key !== k) });
  writeFileSync(path.join(bad, 'nometa.onnx'), encodeModel(strip('lorkd_preprocessing')));
  assert.throws(() => scanExperts(bad), /nometa\.onnx: metadata lacks "lorkd_preprocessing"/);
  const pre = JSON.parse(model.metadata_props.find((p) => p.key === 'lorkd_preprocessing')!.value) as Record<string, unknown>;
  const withPre = (p: Record<string, unknown>) => ({ ...model, metadata_props: model.metadata_props.map((m) => (m.key === 'lorkd_preprocessing' ? { key: m.key, value: JSON.stringify(p) } : m)) });
  writeFileSync(path.join(bad, 'nometa.onnx'), encodeModel(withPre({ ...pre, resize: 'nearest' })));
  assert.throws(() => scanExperts(bad), /resize must be "bilinear", got "nearest"/);
  writeFileSync(path.join(bad, 'nometa.onnx'), encodeModel(withPre({ ...pre, std: [0.5, 0, 0.5] })));
  assert.throws(() => scanExperts(bad), /std must be 3 finite non-zero numbers/);
});

/** A raw GET (no client-side URL normalisation) -> status, headers and body. */
function get(url: string, rawPath: string, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: rawPath, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the server: COOP/COEP on every response, content types, 404, traversal refused, 127.0.0.1 only', async () => {
  const plan = planSite(fx.expertsDir);
  const srv: RunningServer = await serveSite(plan, { port: 0 });
  try {
    assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const cases: [string, string][] = [
      ['/', 'text/html; charset=utf-8'],
      ['/app.js', 'text/javascript; charset=utf-8'],
      ['/vendor/ort.wasm.min.mjs', 'text/javascript; charset=utf-8'],
      ['/vendor/ort-wasm-simd-threaded.wasm', 'application/wasm'],
      ['/models/manifest.json', 'application/json; charset=utf-8'],
      ['/models/breastmnist.onnx', 'application/octet-stream'],
      ['/style.css?v=1', 'text/css; charset=utf-8'],
    ];
    for (const [p, type] of cases) {
      const r = await get(srv.url, p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers['content-type'], type, p);
      assert.equal(r.headers['cross-origin-opener-policy'], 'same-origin', p);
      assert.equal(r.headers['cross-origin-embedder-policy'], 'require-corp', p);
      const rel = sitePath(p) as string;
      assert.ok(r.body.equals(Buffer.from(readSiteFile(plan.files.get(rel)!))), `${p}: body differs from the planned file`);
    }
    for (const p of ['/nope.html', '/models/', '/src/app/site-plan.ts', '/package.json']) {
      const r = await get(srv.url, p);
      assert.equal(r.status, 404, p);
      assert.equal(r.headers['cross-origin-embedder-policy'], 'require-corp');
    }
    for (const p of ['/../package.json', '/%2e%2e/package.json', '/vendor/..%2f..%2fpackage.json', '/models/%2E%2E/manifest.json', '/vendor/%5c..%5cpackage.json', '/a%00.html', '/%zz', '//etc/passwd']) {
      assert.equal((await get(srv.url, p)).status, 400, p);
    }
    assert.equal((await get(srv.url, '/', 'POST')).status, 405);
    const head = await get(srv.url, '/vendor/ort-wasm-simd-threaded.wasm', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
  } finally {
    await srv.close();
  }
  assert.equal(sitePath('/a/b.js?x#y'), 'a/b.js');
  assert.equal(sitePath('/'), 'index.html');
  assert.equal(sitePath('/a/./b'), 400);
  await assert.rejects(async () => {
    const a = await serveSite(plan, { port: 0 });
    const port = Number(new URL(a.url).port);
    try {
      await serveSite(plan, { port });
    } finally {
      await a.close();
    }
  }, /port \d+ on 127\.0\.0\.1 is in use \(choose another with --port\)/);
});

test('lorkd app: one-line usage errors, --build writes a site, --experts serves until SIGTERM', async () => {
  for (const [args, msg] of [
    [['app'], /give either --experts DIR \(serve\) or --build DIR --out SITE/],
    [['app', '--experts', path.join(dir, 'nowhere')], /cannot read experts folder \(ENOENT\)/],
  ] as [string[], RegExp][]) {
    const r = lorkd(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, msg);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
  const out = path.join(dir, 'cli-site');
  const b = spawnSync(process.execPath, [BIN, 'app', '--build', fx.expertsDir, '--out', out, '--json'], { encoding: 'utf8', env: lorkdEnv(), cwd: REPO });
  assert.equal(b.status, 0, b.stderr);
  const built = JSON.parse(b.stdout) as { files: number; experts: { task: string }[] };
  assert.deepEqual(built.experts.map((e) => e.task), ['breastmnist', 'retinamnist']);
  assert.equal(built.files, planSite(fx.expertsDir).files.size);
  assert.ok(existsSync(path.join(out, 'vendor', 'ort-wasm-simd-threaded.wasm')));

  const child = spawn(process.execPath, [BIN, 'app', '--experts', fx.expertsDir, '--port', '0', '--json'], { env: lorkdEnv(), cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const line = await new Promise<string>((resolve, reject) => {
    let acc = '';
    child.stdout!.on('data', (d: Buffer) => {
      acc += d.toString();
      if (acc.includes('\n')) resolve(acc.split('\n')[0]!);
    });
    child.on('exit', () => reject(new Error('lorkd app exited before printing its address')));
  });
  const { url } = JSON.parse(line) as { url: string };
  const r = await get(url, '/');
  assert.equal(r.status, 200);
  assert.match(r.body.toString(), /<title>lorkd/);
  child.kill('SIGTERM');
  // It stops at once: 0 from its own handler, or 143 from lorkd's interrupt handler (src/experiments/signals.ts).
  const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running after 10 s'), 10_000))]);
  assert.ok(code === 0 || code === 143, `exit status ${code}`);
});
