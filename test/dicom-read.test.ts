// DICOM files: pixel values of pydicom's own test files (copied into test/fixtures/dicom) equal
// pydicom's (modality LUT values exactly; the 8-bit display within one grey level of pydicom's
// windowing or min-max), across explicit/implicit little endian, big endian, RLE and deflated
// transfer syntaxes, 8- and 16-bit, signed, MONOCHROME1 and RGB; JPEG-LS, JPEG 2000, JPEG Lossless
// and HTJ2K lossless versions of MR_small give the native file's pixels; an unknown transfer syntax is a one-line
// "unsupported transfer syntax" error; corrupt and truncated files are one-line errors;
// readImage dispatches DICOM by signature.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { UserError } from '../src/tensor/errors.js';
import { decodeDicom, isDicom, readDicomFrame } from '../src/data/dicom.js';
import { decodeImage, readImage } from '../src/data/images.js';
import { type DicomParserLike, modalityValues, readDicomFrameWith, storedValues } from '../src/data/dicom-pixels.js';
import dicomParser from 'dicom-parser';
import { inflateSync } from 'fflate';
import { PYTHON } from './helpers/python.js';
import { REPO } from './helpers/pipeline.js';

const FIX = path.join(REPO, 'test', 'fixtures', 'dicom');
const fixture = (f: string): Uint8Array => readFileSync(path.join(FIX, f));
const MR_NATIVE = ['MR_small.dcm', 'MR_small_implicit.dcm', 'MR_small_bigendian.dcm', 'MR_small_RLE.dcm'];
/** The same image compressed losslessly (pydicom here has no JPEG-LS or JPEG 2000 handler; equality with the native file is the check). */
const MR_VARIANTS = [...MR_NATIVE, 'MR_small_jpeg_ls_lossless.dcm', 'MR_small_jp2klossless.dcm', 'MR_small_jpeg_lossless.dcm', 'MR_small_htj2k_lossless.dcm'];
const GREY = ['CT_small.dcm', ...MR_NATIVE, 'MR_small_monochrome1.dcm', 'image_dfl.dcm'];
const RGB = ['SC_rgb_rle.dcm', 'SC_rgb_small_odd.dcm'];

const hasPydicom = spawnSync(PYTHON, ['-c', 'import pydicom, numpy'], { stdio: 'ignore' }).status === 0;

interface PyRef {
  rows: number;
  columns: number;
  modality?: number[];
  display?: number[];
  rgb?: number[];
  windowed: boolean;
}

/** pydicom's reading of each file: modality-LUT values and the 8-bit display, or RGB planes. */
function pydicomRefs(files: string[]): Record<string, PyRef> {
  const code = `
import sys, json, numpy as np, pydicom
from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_windowing
out = {}
for f in sys.argv[2:]:
    ds = pydicom.dcmread(sys.argv[1] + '/' + f)
    a = ds.pixel_array
    r = {'rows': int(ds.Rows), 'columns': int(ds.Columns), 'windowed': 'WindowCenter' in ds}
    if ds.SamplesPerPixel == 3:
        r['rgb'] = a.transpose(2, 0, 1).reshape(-1).tolist()
    else:
        m = apply_modality_lut(a, ds).astype(np.float64)
        if r['windowed']:
            # pydicom's windowing maps onto the range of the (rescaled) stored values.
            bs = ds.BitsStored
            lo, hi = (0, 2 ** bs - 1) if ds.PixelRepresentation == 0 else (-(2 ** (bs - 1)), 2 ** (bs - 1) - 1)
            if 'RescaleSlope' in ds and 'RescaleIntercept' in ds:
                lo, hi = lo * ds.RescaleSlope + ds.RescaleIntercept, hi * ds.RescaleSlope + ds.RescaleIntercept
            d = (apply_windowing(m, ds) - lo) / (hi - lo) * 255
        else:
            d = (m - m.min()) / (m.max() - m.min()) * 255
        d = np.round(d)
        if ds.PhotometricInterpretation == 'MONOCHROME1':
            d = 255 - d
        r['modality'] = m.reshape(-1).tolist()
        r['display'] = d.reshape(-1).tolist()
    out[f] = r
print(json.dumps(out))
`;
  const r = spawnSync(PYTHON, ['-c', code, FIX, ...files], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120_000 });
  if (r.status !== 0) throw new Error(`pydicom failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, PyRef>;
}

test('grey fixtures equal pydicom: modality LUT values exactly, the 8-bit display within one grey level', { skip: hasPydicom ? false : `${PYTHON} cannot import pydicom` }, () => {
  const refs = pydicomRefs(GREY);
  for (const f of GREY) {
    const ref = refs[f]!;
    const frame = readDicomFrame(fixture(f), f);
    const mod = modalityValues(storedValues(frame.bytes, frame.info), frame.info);
    assert.equal(mod.length, ref.rows * ref.columns, f);
    assert.deepEqual(Array.from(mod), ref.modality, `${f}: modality values differ from pydicom`);
    const img = decodeDicom(fixture(f), f);
    assert.equal(img.channels, 1);
    assert.equal(img.window !== undefined, ref.windowed, `${f}: window`);
    let worst = 0;
    let same = 0;
    for (let i = 0; i < img.data.length; i++) {
      const d = Math.abs(img.data[i]! - ref.display![i]!);
      worst = Math.max(worst, d);
      if (d === 0) same++;
    }
    assert.ok(worst <= 1, `${f}: display differs from pydicom's by ${worst} grey levels`);
    assert.ok(same / img.data.length > 0.99, `${f}: only ${same} of ${img.data.length} pixels equal`);
    // Not a flat image: the test would not see a wrong mapping otherwise.
    assert.ok(img.data.reduce((a, v) => Math.max(a, v), 0) - img.data.reduce((a, v) => Math.min(a, v), 255) > 100, `${f}: display range too small`);
  }
});

test('RGB fixtures (RLE and native, 8-bit) equal pydicom\'s planes', { skip: hasPydicom ? false : `${PYTHON} cannot import pydicom` }, () => {
  const refs = pydicomRefs(RGB);
  for (const f of RGB) {
    const img = decodeDicom(fixture(f), f);
    assert.equal(img.channels, 3);
    assert.deepEqual(Array.from(img.data), refs[f]!.rgb, f);
  }
});

test('the same MR image in six transfer syntaxes decodes to the same pixels; MONOCHROME1 is its inversion', () => {
  const base = decodeDicom(fixture('MR_small.dcm'));
  assert.deepEqual([base.rows, base.columns, base.photometric], [64, 64, 'MONOCHROME2']);
  assert.deepEqual(base.window, { center: 600, width: 1600 });
  const syntaxes = new Set<string>();
  for (const f of MR_VARIANTS) {
    const img = decodeDicom(fixture(f), f);
    syntaxes.add(img.transferSyntax);
    assert.deepEqual(img.data, base.data, f);
  }
  assert.equal(syntaxes.size, 8);
  const inv = decodeDicom(fixture('MR_small_monochrome1.dcm'));
  assert.equal(inv.photometric, 'MONOCHROME1');
  assert.deepEqual(Array.from(inv.data), Array.from(base.data, (v) => 255 - v));
});

test('an unknown transfer syntax, and a corrupt compressed frame: one-line errors', () => {
  // JPEG-LS's UID changed to 1.2.840.10008.1.2.4.94 (JPIP, no pixel codec), same length
  const jls = Buffer.from(fixture('MR_small_jpeg_ls_lossless.dcm'));
  const unknown = Buffer.from(jls.toString('latin1').replaceAll('1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.94'), 'latin1');
  assert.throws(() => decodeDicom(unknown, 'u.dcm'), (e: Error) => e instanceof UserError && /^u\.dcm: unsupported transfer syntax unknown \(1\.2\.840\.10008\.1\.2\.4\.94\); lorkd reads .*JPEG-LS Lossless/.test(e.message) && !e.message.includes('\n'));
  // JPEG-LS: scrambled scan data; JPEG 2000 (OpenJPEG decodes scrambled scan data): a scrambled image header (SIZ)
  for (const [f, at] of [['MR_small_jpeg_ls_lossless.dcm', (b: Buffer) => b.length - 3000], ['MR_small_jp2klossless.dcm', (b: Buffer) => b.indexOf(Buffer.from([0xff, 0x4f, 0xff, 0x51])) + 4]] as const) {
    const b = Buffer.from(fixture(f));
    const from = at(b);
    for (let i = from; i < from + 2000; i++) b[i] = (i * 131) & 255;
    assert.throws(() => decodeDicom(b, f), (e: Error) => e instanceof UserError && e.message.startsWith(`${f}: `) && !e.message.includes('\n'), f);
  }
});

test('corrupt input: truncated pixel data, a cut header, garbage named .dcm: one-line UserErrors', () => {
  const mr = fixture('MR_small.dcm');
  const cases: [Uint8Array, RegExp][] = [
    [mr.subarray(0, mr.length - 1000), /truncated|corrupt|not a readable DICOM/],
    [mr.subarray(0, 300), /not a readable DICOM|the file has no /],
    [Uint8Array.from({ length: 500 }, (_, i) => (i * 37) & 255), /not a readable DICOM|the file has no /],
    [fixture('SC_rgb_rle.dcm').subarray(0, fixture('SC_rgb_rle.dcm').length - 400), /RLE|truncated|corrupt/],
  ];
  for (const [bytes, re] of cases) {
    assert.throws(
      () => decodeImage(bytes, 'x.dcm'),
      (e: Error) => e instanceof UserError && re.test(e.message) && e.message.startsWith('x.dcm: ') && !e.message.includes('\n'),
    );
  }
});

test('readImage: DICOM by its signature (any name) as 3 equal grey channels; PNG still read as PNG', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-dicom-'));
  try {
    const mr = fixture('MR_small.dcm');
    assert.ok(isDicom(mr));
    const misnamed = path.join(dir, 'scan.img');
    writeFileSync(misnamed, mr);
    const img = readImage(misnamed);
    const d = decodeDicom(mr);
    assert.deepEqual([img.height, img.width, img.grey], [64, 64, true]);
    for (let c = 0; c < 3; c++) assert.deepEqual(img.data.subarray(c * 4096, (c + 1) * 4096), d.data);
    const png = path.join(dir, 'a.png');
    writeFileSync(png, PNG.sync.write({ width: 2, height: 1, data: Buffer.from([10, 20, 30, 255, 40, 50, 60, 255]) } as PNG));
    assert.deepEqual(Array.from(readImage(png).data), [10, 40, 20, 50, 30, 60]);
    assert.throws(() => readImage(path.join(dir, 'missing.dcm')), /missing\.dcm: cannot read image \(ENOENT\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readDicomFrameWith (the browser\'s entry: parser and raw inflater passed in) reads the deflated file as the Node path does', () => {
  const bytes = fixture('image_dfl.dcm');
  let inflated = 0;
  const frame = readDicomFrameWith(dicomParser as unknown as DicomParserLike, new Uint8Array(bytes), {
    inflateRaw: (b) => {
      inflated++;
      return inflateSync(b);
    },
  });
  assert.equal(inflated, 1, 'the given inflater is used');
  const node = readDicomFrame(bytes, 'image_dfl.dcm');
  assert.deepEqual(frame.info, node.info);
  assert.ok(Buffer.from(frame.bytes).equals(Buffer.from(node.bytes)), 'same pixel bytes');
  assert.equal(frame.transferSyntax, '1.2.840.10008.1.2.1.99');
  let sizes: number[] = [];
  assert.throws(
    () => readDicomFrameWith(dicomParser as unknown as DicomParserLike, fixture('CT_small.dcm'), { checkSize: (r, c) => { sizes = [r, c]; throw new RangeError('too big'); } }),
    RangeError,
  );
  assert.deepEqual(sizes, [128, 128]);
});
