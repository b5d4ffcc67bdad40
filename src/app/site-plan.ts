// The static site of the browser app as a plan: site path -> where its bytes come from. The page's
// own sources (src/app/site/), the few runtime files it needs from node_modules (onnxruntime-web's
// wasm build, jpeg-js's decoder, dicom-parser, the DICOM codecs `lorkd predict` uses, lorkd's DICOM
// pixel and decoder modules), the experts and their manifest. `lorkd app --build` writes the plan to a folder; `lorkd app --experts` serves it as is.
import { writeFileAtomic } from '../io/atomic.js';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { readRegular } from '../io/read.js';
import { createRequire } from 'node:module';
import path from 'node:path';
import { UserError } from '../tensor/errors.js';
import { packageRoot } from '../data/medmnist.js';
import { WASM_CODECS } from '../data/dicom-decoders.js';
import { type Manifest, manifestOf, scanExperts } from './experts.js';

/** One file of the site: copied from `source`, or the bytes in `data`. */
export type SiteFile = { source: string } | { data: Uint8Array };

export interface SitePlan {
  /** Site path (forward slashes, no leading slash) -> file. */
  files: Map<string, SiteFile>;
  manifest: Manifest;
}

/** The page's own files in src/app/site/. */
const PAGE_FILES = ['index.html', 'style.css', 'app.js', 'preprocess.js', 'decode.js', 'cam.js', 'csv.js', 'dicom.js', 'codecs.js', 'png.js'];

const require = createRequire(import.meta.url);

/** The folder of an installed npm package. */
function pkgDir(pkg: string): string {
  let main: string;
  try {
    main = require.resolve(pkg);
  } catch {
    throw new UserError(`the app needs the npm package "${pkg}" (run npm ci)`);
  }
  let dir = path.dirname(main);
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new UserError(`cannot find the folder of the npm package "${pkg}"`);
    dir = up;
  }
  return dir;
}

/** Vendored packages: the files the page loads (site name -> path in the package). */
const VENDORED: { pkg: string; files: [string, string][] }[] = [
  // onnxruntime-web's wasm-only ESM build loads its threaded glue (.mjs) and binary from its own folder.
  {
    pkg: 'onnxruntime-web',
    files: [
      ['ort.wasm.min.mjs', 'dist/ort.wasm.min.mjs'],
      ['ort-wasm-simd-threaded.mjs', 'dist/ort-wasm-simd-threaded.mjs'],
      ['ort-wasm-simd-threaded.wasm', 'dist/ort-wasm-simd-threaded.wasm'],
    ],
  },
  // The JPEG decoder lorkd itself uses (the same pixels as `lorkd predict`); sets window['jpeg-js'].
  { pkg: 'jpeg-js', files: [['jpeg-decoder.js', 'lib/decoder.js']] },
  { pkg: 'dicom-parser', files: [['dicomParser.min.js', 'dist/dicomParser.min.js']] },
  // Inflate for PNG and deflated DICOM (dicom-parser's browser build has no inflater); sets self.fflate.
  { pkg: 'fflate', files: [['fflate.min.js', 'umd/index.js']] },
  // Compressed DICOM frames (site/codecs.js loads each on first use): the WASM codecs' emscripten
  // glue and binaries, and jpeg-lossless-decoder-js's ES module build.
  ...Object.values(WASM_CODECS).map((c) => ({ pkg: c.pkg, files: [c.glueFile, c.wasmFile].map((f): [string, string] => [f, `dist/${f}`]) })),
  { pkg: 'jpeg-lossless-decoder-js', files: [['lossless.js', 'release/lossless.js']] },
];

/** Vendored runtime files (site path -> installed file) and a NOTICE naming each package's version and license. */
function vendorFiles(): { files: [string, string][]; notice: string } {
  const files: [string, string][] = [];
  const notice = ['Third-party files in this folder, copied unchanged from their npm packages:', ''];
  for (const v of VENDORED) {
    const dir = pkgDir(v.pkg);
    const info = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version?: string; license?: string };
    for (const [site, rel] of v.files) {
      const f = path.join(dir, rel);
      if (!existsSync(f)) throw new UserError(`${f}: missing from the npm package "${v.pkg}" (reinstall it)`);
      files.push([`vendor/${site}`, f]);
    }
    const lic = ['LICENSE', 'LICENSE.md', 'LICENSE.txt'].map((n) => path.join(dir, n)).find(existsSync);
    // A scoped name (@scope/name) stays one file name.
    const licName = `LICENSE.${v.pkg.replace(/^@/, '').replace(/\//g, '-')}.txt`;
    if (lic) files.push([`vendor/${licName}`, lic]);
    notice.push(`${v.pkg} ${info.version ?? '?'} (${info.license ?? 'see the package'}): ${v.files.map(([s]) => s).join(', ')}${lic ? ` (license text: ${licName})` : ''}`);
  }
  // lorkd's DICOM pixel math and decoders (no npm imports), compiled from src/data/.
  for (const m of ['dicom-pixels.js', 'dicom-decoders.js', 'jpeg12.js']) {
    const f = path.join(packageRoot(), 'dist', 'src', 'data', m);
    if (existsSync(f)) files.push([`vendor/${m}`, f]);
  }
  return { files, notice: notice.join('\n') + '\n' };
}

/** The site for the .onnx experts in `expertsDir` (checked; see scanExperts). */
export function planSite(expertsDir: string): SitePlan {
  const experts = scanExperts(expertsDir);
  const manifest = manifestOf(experts);
  const files = new Map<string, SiteFile>();
  const pageDir = path.join(packageRoot(), 'src', 'app', 'site');
  for (const f of PAGE_FILES) {
    const src = path.join(pageDir, f);
    if (!existsSync(src)) throw new UserError(`${src}: the app's page sources are missing from this installation`);
    files.set(f, { source: src });
  }
  const vendor = vendorFiles();
  for (const [site, src] of vendor.files) files.set(site, { source: src });
  files.set('vendor/NOTICE.txt', { data: new TextEncoder().encode(vendor.notice) });
  for (const e of experts) files.set(e.entry.file, { source: e.source });
  files.set('models/manifest.json', { data: new TextEncoder().encode(JSON.stringify(manifest, null, 2) + '\n') });
  return { files, manifest };
}

/** The bytes of one planned file. */
export const readSiteFile = (f: SiteFile): Uint8Array => ('data' in f ? f.data : readRegular(f.source));

/** Total bytes of a plan. */
export const planBytes = (plan: SitePlan): number =>
  [...plan.files.values()].reduce((s, f) => s + ('data' in f ? f.data.length : statSync(f.source).size), 0);

/**
 * Writes the plan under `outDir`. The folder must be new, empty, or a site this function wrote
 * before (it holds models/manifest.json); that one is replaced. Anything else is refused, so a
 * mistyped --out never deletes someone's files.
 */
export function writeSite(plan: SitePlan, outDir: string): void {
  if (existsSync(outDir)) {
    if (!statSync(outDir).isDirectory()) throw new UserError(`${outDir}: exists and is not a folder`);
    const ours = existsSync(path.join(outDir, 'models', 'manifest.json')) && existsSync(path.join(outDir, 'index.html'));
    const empty = readdirSync(outDir).length === 0;
    if (!ours && !empty) throw new UserError(`${outDir}: folder is not empty and is not a lorkd app site (choose a new --out folder)`);
    if (ours) for (const n of readdirSync(outDir)) rmSync(path.join(outDir, n), { recursive: true, force: true });
  }
  for (const [rel, f] of plan.files) {
    const dst = path.join(outDir, ...rel.split('/'));
    mkdirSync(path.dirname(dst), { recursive: true });
    writeFileAtomic(dst, 'data' in f ? f.data : readRegular(f.source));
  }
}
