// Compressed and multi-frame DICOM checked against Debian's pydicom (optional: skipped without
// it): JPEG Baseline (libjpeg-turbo WASM) and JPEG 2000 (OpenJPEG WASM) frames against pydicom's
// Pillow handler, every frame of multi-frame RLE and native files exactly, and `lorkd pack` turning
// each frame of a multi-frame file into one record. (pydicom here has no JPEG-LS or JPEG Lossless
// handler; dicom-read.test.ts checks JPEG-LS, JPEG Lossless and HTJ2K against the same image stored
// uncompressed, dicom-debian-codecs.test.ts against Debian's DCMTK and OpenJPH encoders.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import dicomParser from 'dicom-parser';
import { type DicomParserLike, readDicomFramesWith, storedValues } from '../src/data/dicom-pixels.js';
import { DICOM_CODECS } from '../src/data/dicom-codecs.js';
import { dicomFrames } from '../src/data/dicom.js';
import { packSources, openPack } from '../src/pack/index.js';
import { PYTHON } from './helpers/python.js';

const PYDICOM_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const hasPydicom = spawnSync(PYTHON, ['-c', 'import pydicom, numpy, PIL'], { stdio: 'ignore' }).status === 0;
/** Runs a Python program (stdout up to 64 MB: pixel arrays). */
function python(code: string, args: string[]): string {
  const r = spawnSync(PYTHON, ['-c', code, ...args], { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`python failed (status ${r.status}): ${r.stderr}`);
  return r.stdout;
}
const skip = hasPydicom && existsSync(PYDICOM_FILES) ? false : 'Debian pydicom (python3-pydicom) with numpy and PIL is not installed';

/** pydicom's pixel_array of `file` (YBR converted to RGB), all frames, as int32 values in file order. */
function pydicomPixels(file: string): { frames: number; values: Int32Array } {
  const out = python(
    `import sys, json, base64, numpy as np, pydicom
from pydicom.pixel_data_handlers.util import convert_color_space
ds = pydicom.dcmread(sys.argv[1])
a = ds.pixel_array
if ds.PhotometricInterpretation.startswith('YBR'):
    a = convert_color_space(a, ds.PhotometricInterpretation, 'RGB')
n = int(getattr(ds, 'NumberOfFrames', 1) or 1)
print(json.dumps({'frames': n, 'b64': base64.b64encode(np.ascontiguousarray(a, dtype='<i4').tobytes()).decode()}))`,
    [file],
  );
  const r = JSON.parse(out) as { frames: number; b64: string };
  const b = Buffer.from(r.b64, 'base64');
  return { frames: r.frames, values: new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4) };
}

/** lorkd's stored values of every frame, concatenated. */
function lorkdPixels(file: string): { frames: number; values: Int32Array; photometric: string } {
  const d = readDicomFramesWith(dicomParser as unknown as DicomParserLike, readFileSync(file), { codecs: DICOM_CODECS });
  const parts = Array.from({ length: d.count }, (_, k) => {
    const f = d.frame(k);
    return { v: Int32Array.from(storedValues(f.bytes, f.info)), p: f.info.photometric };
  });
  const values = new Int32Array(parts.reduce((s, p) => s + p.v.length, 0));
  let at = 0;
  for (const p of parts) values.set(p.v, (at += p.v.length) - p.v.length);
  return { frames: d.count, values, photometric: parts[0]!.p };
}

function maxDiff(a: Int32Array, b: Int32Array): number {
  assert.equal(a.length, b.length, 'same number of samples');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('compressed frames equal pydicom: JPEG 2000 exactly, JPEG Baseline (YBR -> RGB) within 2 levels', { skip }, () => {
  for (const [f, tol] of [['JPEG2000.dcm', 0], ['SC_rgb_jpeg_dcmtk.dcm', 2], ['SC_rgb_small_odd_jpeg.dcm', 2]] as const) {
    const file = path.join(PYDICOM_FILES, f);
    const ref = pydicomPixels(file);
    const got = lorkdPixels(file);
    assert.equal(got.frames, ref.frames, f);
    const d = maxDiff(got.values, ref.values);
    assert.ok(d <= tol, `${f}: max difference ${d} > ${tol}`);
    if (f.startsWith('SC_rgb')) assert.equal(got.photometric, 'RGB');
  }
});

/** A 3-frame 16-bit MONOCHROME2 file written by pydicom (native, explicit VR little endian). */
function multiFrameFile(dir: string): string {
  const file = path.join(dir, 'mf.dcm');
  python(
    `import sys, numpy as np, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
m = FileMetaDataset(); m.TransferSyntaxUID = ExplicitVRLittleEndian; m.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.7'; m.MediaStorageSOPInstanceUID = generate_uid()
ds = Dataset(); ds.file_meta = m; ds.is_little_endian = True; ds.is_implicit_VR = False
ds.SOPClassUID = m.MediaStorageSOPClassUID; ds.SOPInstanceUID = m.MediaStorageSOPInstanceUID
a = (np.arange(3 * 20 * 30, dtype=np.uint16).reshape(3, 20, 30) * 7) % 4096
a[1] = 4095 - a[1]; a[2] //= 3
ds.Rows, ds.Columns, ds.NumberOfFrames = 20, 30, 3
ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = 'MONOCHROME2'
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
ds.PixelData = a.tobytes()
ds.save_as(sys.argv[1], write_like_original=False)`,
    [file],
  );
  return file;
}

test('every frame of multi-frame files equals pydicom (RLE RGB, native 16-bit); lorkd pack stores each frame', { skip }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-dicom-mf-'));
  const native = multiFrameFile(dir);
  for (const file of [path.join(PYDICOM_FILES, 'SC_rgb_rle_2frame.dcm'), native]) {
    const ref = pydicomPixels(file);
    const got = lorkdPixels(file);
    assert.ok(got.frames > 1);
    assert.equal(got.frames, ref.frames);
    assert.equal(maxDiff(got.values, ref.values), 0, file);
  }
  // frames differ, and the display of frame k is what a pack stores as record k
  const frames = dicomFrames(readFileSync(native), native);
  assert.notDeepEqual(frames.frame(0).data, frames.frame(1).data);
  const root = path.join(dir, 'scans');
  mkdirSync(path.join(root, 'train', 'a'), { recursive: true });
  mkdirSync(path.join(root, 'train', 'b'), { recursive: true });
  const { copyFileSync } = await import('node:fs');
  copyFileSync(native, path.join(root, 'train', 'a', 'mf.dcm'));
  copyFileSync(path.join(PYDICOM_FILES, 'SC_rgb_jpeg_dcmtk.dcm'), path.join(root, 'train', 'b', 'rgb.dcm'));
  const out = path.join(dir, 'pack');
  await packSources([root], { out, storage: 'raw', size: 20, quality: 90, val: 0.1, test: 0.2, seed: 0, shardBytes: 1 << 20, threads: 1 });
  const pack = openPack(out);
  assert.equal(pack.count(0, 'train'), 4, '3 frames + 1 image');
  assert.deepEqual([...pack.labels(0, 'train')], [0, 0, 0, 1]);
  // record k is frame k's display image resized as the in-memory path resizes it
  const { resizeImage } = await import('../src/data/images.js');
  const { dicomToImage } = await import('../src/data/dicom.js');
  for (let k = 0; k < 3; k++) {
    const img = await pack.image(0, 'train', k);
    assert.equal(img.grey, true);
    assert.deepEqual(img.data, resizeImage(dicomToImage(frames.frame(k)), 20, 20).data, `frame ${k}`);
  }
  assert.equal((await pack.image(0, 'train', 3)).grey, false, 'the RGB JPEG');
});
