// lorkd's 12-bit JPEG Extended decoder (src/data/jpeg12.ts) on committed files, no tool needed:
// MR_small's pixels as 12-bit JPEG Extended made by DCMTK's dcmcjpeg, checked against the same file
// decoded by DCMTK's dcmdjpeg (IJG libjpeg 6b, 12-bit), and against a copy re-encoded with restart
// markers; broken streams fail in one line. test/dicom-debian-codecs.test.ts runs the tools live.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import dicomParser from 'dicom-parser';
import { DICOM_CODECS } from '../src/data/dicom-codecs.js';
import { type DicomParserLike, readDicomFrameWith, storedValues } from '../src/data/dicom-pixels.js';
import { decodeDicom } from '../src/data/dicom.js';
import { decodeJpegSequential, JpegError } from '../src/data/jpeg12.js';
import { UserError } from '../src/tensor/errors.js';
import { REPO } from './helpers/pipeline.js';
import { dicomFile } from './helpers/dicom-write.js';

const FIX = path.join(REPO, 'test', 'fixtures', 'dicom');
const EXT12 = 'MR_small_jpeg_extended12.dcm';
const fixture = (f: string): Uint8Array => readFileSync(path.join(FIX, f));
const frameOf = (bytes: Uint8Array) => readDicomFrameWith(dicomParser as unknown as DicomParserLike, bytes, { codecs: DICOM_CODECS });
const values = (bytes: Uint8Array): Int32Array => {
  const f = frameOf(bytes);
  return Int32Array.from(storedValues(f.bytes, f.info));
};

/** The JPEG code stream (the one fragment) of an encapsulated DICOM file. */
function codeStream(bytes: Uint8Array): Uint8Array {
  const ds = dicomParser.parseDicom(bytes);
  const el = ds.elements['x7fe00010']!;
  return new Uint8Array(dicomParser.readEncapsulatedPixelDataFromFragments(ds, el, 0));
}

const MR12 = { rows: 64, columns: 64, bitsAllocated: 16, bitsStored: 12 };

test('12-bit JPEG Extended fixture equals DCMTK dcmdjpeg bit for bit, restart markers or not', () => {
  const ref = values(fixture('MR_small_jpeg_extended12_dcmdjpeg.dcm'));
  const got = values(fixture(EXT12));
  assert.equal(got.length, 64 * 64);
  assert.deepEqual(got, ref);
  const source = values(fixture('MR_small.dcm'));
  assert.ok(got.some((v, i) => v !== source[i]), 'the check has teeth: the JPEG is lossy');
  const rst = values(fixture('MR_small_jpeg_extended12_rst.dcm'));
  assert.deepEqual(rst, ref);
  assert.ok(codeStream(fixture('MR_small_jpeg_extended12_rst.dcm')).some((b, i, a) => b === 0xff && a[i + 1] === 0xd7), 'the copy has restart markers up to RST7');
  // a header that disagrees with the stream is refused from the frame header, before decoding
  const wrong = dicomFile({ ...MR12, rows: 63 }, { fragments: [codeStream(fixture(EXT12))], ts: '1.2.840.10008.1.2.4.51' });
  assert.throws(() => decodeDicom(wrong, 'wrong.dcm'), { message: 'wrong.dcm: JPEG Extended frame is 64x64, the header says 64x63' });
  // and the display image
  const img = decodeDicom(fixture(EXT12), EXT12);
  assert.equal(img.rows, 64);
  assert.equal(img.columns, 64);
  assert.equal(img.transferSyntax, '1.2.840.10008.1.2.4.51');
});

test('truncated 12-bit JPEG streams fail with one line and never hang', () => {
  const jpeg = codeStream(fixture(EXT12));
  let failed = 0;
  for (let cut = 0; cut < jpeg.length - 2; cut += 7) {
    assert.throws(() => decodeJpegSequential(jpeg.subarray(0, cut)), (e: Error) => e instanceof JpegError && !e.message.includes('\n'), `cut at ${cut}`);
    failed++;
  }
  assert.ok(failed > 100);
  // a stream without its EOI still has all its data: decoded, as libjpeg does
  assert.equal(decodeJpegSequential(jpeg.subarray(0, jpeg.length - 2)).samples.length, 64 * 64);
  // through a DICOM file, the error names the file
  const cutFile = dicomFile(MR12, { fragments: [jpeg.subarray(0, jpeg.length >> 1)], ts: '1.2.840.10008.1.2.4.51' });
  assert.throws(
    () => decodeDicom(cutFile, 'cut.dcm'),
    (e: Error) => e instanceof UserError && /^cut\.dcm: JPEG Extended frame: (corrupt or )?truncated JPEG/.test(e.message) && !e.message.includes('\n'),
  );
});

test('corrupted 12-bit JPEG streams decode or fail with a JpegError, nothing else', () => {
  const jpeg = codeStream(fixture(EXT12));
  let s = 12345;
  let errors = 0;
  for (let k = 0; k < 300; k++) {
    const bad = jpeg.slice();
    for (let j = 0; j < 3; j++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      bad[2 + (s % (bad.length - 2))] = (s >>> 16) & 0xff;
    }
    try {
      const img = decodeJpegSequential(bad);
      assert.ok(img.samples.every((v) => v <= 4095));
    } catch (e) {
      assert.ok(e instanceof JpegError, `seed ${k}: ${(e as Error).stack}`);
      assert.ok(!(e as Error).message.includes('\n'));
      errors++;
    }
  }
  assert.ok(errors > 0, 'some corruptions are detected');
});

test('frames the sequential decoder does not handle are refused by name', () => {
  const jpeg = codeStream(fixture(EXT12));
  const sof = jpeg.findIndex((b, i) => b === 0xff && jpeg[i + 1] === 0xc1);
  assert.ok(sof > 0);
  for (const [marker, what] of [
    [0xc2, 'progressive DCT JPEG is not supported by the sequential decoder'],
    [0xc3, 'lossless JPEG is not supported by the sequential decoder'],
    [0xc9, 'arithmetic-coded sequential JPEG is not supported by the sequential decoder'],
  ] as const) {
    const bad = jpeg.slice();
    bad[sof + 1] = marker;
    assert.throws(() => decodeJpegSequential(bad), { message: what });
  }
  const p16 = jpeg.slice();
  p16[sof + 4] = 16;
  assert.throws(() => decodeJpegSequential(p16), { message: 'JPEG sample precision 16 is not supported by the DCT decoder (8 and 12 are)' });
  assert.throws(() => decodeJpegSequential(new Uint8Array([1, 2, 3, 4])), { message: 'not a JPEG stream (no SOI marker)' });
});
