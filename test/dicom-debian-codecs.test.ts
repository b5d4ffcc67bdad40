// Compressed DICOM made by Debian's encoders, independent of lorkd and of its npm decoders, and
// decoded by lorkd (optional: each test skips without its tool):
//  - DCMTK's dcmcjpeg: JPEG Lossless, Process 14 SV1 (.70) and other predictors (.57), 8-, 12- and
//    16-bit, signed and unsigned, multi-frame: lorkd's values equal the source's bit for bit; JPEG
//    Extended 8-bit equals DCMTK's own decoder (dcmdjpeg) within 1 level, and 12-bit (lorkd's
//    src/data/jpeg12.ts) equals it bit for bit: grey and colour, with restart markers re-encoded
//    by test/helpers/jpeg-restart.ts (dcmcjpeg cannot write them).
//  - OpenJPH's ojph_compress: HTJ2K code streams wrapped as DICOM (.201, .202 RPCL, .203): lossless
//    equal to the source, lossy equal to ojph_expand within 1 level; grey 8/12/16-bit and RGB.
// The source files are written by test/helpers/dicom-write.ts, and read back as Buffers, as
// lorkd predict reads files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import dicomParser from 'dicom-parser';
import { type DicomParserLike, readDicomFramesWith, storedValues } from '../src/data/dicom-pixels.js';
import { DICOM_CODECS } from '../src/data/dicom-codecs.js';
import { decodeJpegSequential } from '../src/data/jpeg12.js';
import { DCMCJPEG, dicomFile, hasDcmtk, hasOpenjph, OJPH_COMPRESS, OJPH_EXPAND, type PixelModule, readPnm, tool, writePnm } from './helpers/dicom-write.js';
import { withRestarts } from './helpers/jpeg-restart.js';

const R = 37;
const C = 53;

/** A smooth ramp plus noise, so predictors and wavelets have something to do; every value in [lo, lo + 2^bits). */
function image(bits: number, seed: number, samples = 1, frames = 1, lo = 0): Int32Array {
  const n = R * C * samples * frames;
  const max = 2 ** bits;
  const v = new Int32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const p = Math.floor(i / samples) % (R * C);
    v[i] = lo + ((Math.floor((p % C) * (max / C) * 0.7 + Math.floor(p / C) * (max / R) * 0.25) + (s >>> 26) + 97 * (i % samples)) % max);
  }
  // the extremes appear
  v[0] = lo;
  v[n - 1] = lo + max - 1;
  return v;
}

/** Values -> native little-endian bytes of `bitsAllocated`. */
function nativeBytes(v: Int32Array, bitsAllocated: number): Uint8Array {
  return bitsAllocated === 8 ? Uint8Array.from(v, (x) => x & 0xff) : new Uint8Array(Uint16Array.from(v, (x) => x & 0xffff).buffer);
}

/** lorkd's stored values of every frame of DICOM bytes, concatenated, and the transfer syntax. */
function lorkdValues(bytes: Uint8Array): { ts: string; values: Int32Array; photometric: string } {
  const d = readDicomFramesWith(dicomParser as unknown as DicomParserLike, bytes, { codecs: DICOM_CODECS });
  const parts = Array.from({ length: d.count }, (_, k) => d.frame(k));
  const values = Int32Array.from(parts.flatMap((f) => Array.from(storedValues(f.bytes, f.info))));
  return { ts: d.transferSyntax, values, photometric: parts[0]!.info.photometric };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'same number of samples');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function withDir<T>(f: (dir: string) => T): T {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-dicom-debian-'));
  try {
    return f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const noDcmtk = hasDcmtk ? false : `${DCMCJPEG} is missing (Debian package dcmtk)`;
const noOpenjph = hasOpenjph ? false : `${OJPH_COMPRESS} / ${OJPH_EXPAND} are missing (Debian package openjph-tools)`;

test('JPEG Lossless from dcmcjpeg (SV1 and predictors 2-7; 8/12/16-bit, signed, multi-frame) decodes bit-exact', { skip: noDcmtk }, () => {
  withDir((dir) => {
    const cases: { p: PixelModule; seed: number }[] = [
      { p: { rows: R, columns: C, bitsAllocated: 8, bitsStored: 8 }, seed: 1 },
      { p: { rows: R, columns: C, bitsAllocated: 16, bitsStored: 12 }, seed: 2 },
      { p: { rows: R, columns: C, bitsAllocated: 16, bitsStored: 16 }, seed: 3 },
      { p: { rows: R, columns: C, bitsAllocated: 16, bitsStored: 16, pixelRepresentation: 1 }, seed: 4 },
      { p: { rows: R, columns: C, bitsAllocated: 16, bitsStored: 16, frames: 3 }, seed: 5 },
    ];
    let checked = 0;
    for (const { p, seed } of cases) {
      const signed = p.pixelRepresentation === 1;
      const v = image(p.bitsStored, seed, 1, p.frames ?? 1, signed ? -(2 ** (p.bitsStored - 1)) : 0);
      const src = path.join(dir, `src-${seed}.dcm`);
      writeFileSync(src, dicomFile(p, { pixels: nativeBytes(v, p.bitsAllocated) }));
      assert.equal(maxDiff(lorkdValues(readFileSync(src)).values, v), 0, 'the native source reads back');
      for (const [ts, args] of [['1.2.840.10008.1.2.4.70', ['+e1']], ...[2, 3, 4, 5, 6, 7].map((sv) => ['1.2.840.10008.1.2.4.57', ['+el', '--selection-value', String(sv)]])] as [string, string[]][]) {
        const out = path.join(dir, `out-${seed}-${args.join('')}.dcm`);
        tool(DCMCJPEG, [...args, src, out]);
        const got = lorkdValues(readFileSync(out));
        assert.equal(got.ts, ts);
        assert.equal(maxDiff(got.values, v), 0, `${p.bitsStored}-bit${signed ? ' signed' : ''} ${args.join(' ')}: not bit-exact`);
        checked++;
      }
    }
    assert.equal(checked, 35);
  });
});

test('JPEG Extended 8-bit from dcmcjpeg equals dcmdjpeg within 1 level (libjpeg-turbo), exactly with jpeg12.ts', { skip: noDcmtk }, () => {
  withDir((dir) => {
    const v8 = image(8, 11);
    const src8 = path.join(dir, 'src8.dcm');
    writeFileSync(src8, dicomFile({ rows: R, columns: C, bitsAllocated: 8, bitsStored: 8 }, { pixels: nativeBytes(v8, 8) }));
    const jpeg8 = path.join(dir, 'ext8.dcm');
    tool(DCMCJPEG, ['+ee', src8, jpeg8]);
    const got = lorkdValues(readFileSync(jpeg8));
    assert.equal(got.ts, '1.2.840.10008.1.2.4.51');
    const ref = lorkdValues(readFileSync(dcmdjpeg(dir, jpeg8))).values;
    assert.ok(maxDiff(got.values, ref) <= 1, `8-bit JPEG Extended: max difference from dcmdjpeg ${maxDiff(got.values, ref)}`);
    assert.ok(maxDiff(got.values, v8) > 0, 'the check has teeth: the JPEG is lossy');
    // lorkd's own sequential decoder (used for 12-bit) is exact at 8 bits too
    const own = decodeJpegSequential(codeStream(jpeg8));
    assert.equal(own.precision, 8);
    assert.equal(maxDiff(own.samples, ref), 0, 'jpeg12.ts at 8 bits differs from dcmdjpeg');
  });
});

/** DCMTK's own decoding of `file` (IJG libjpeg 6b), colour by pixel: the reference. */
function dcmdjpeg(dir: string, file: string): string {
  const out = path.join(dir, `${path.basename(file, '.dcm')}-dcmdjpeg.dcm`);
  tool('/usr/bin/dcmdjpeg', ['+px', file, out]);
  return out;
}

/** Test images of 12 bits (or `bits`): smooth, noisy, or hard edges at the extremes (the clamping). */
function pattern(kind: 'smooth' | 'noise' | 'edges', rows: number, cols: number, seed: number, bits = 12, samples = 1, frames = 1): Int32Array {
  const max = 2 ** bits - 1;
  const v = new Int32Array(rows * cols * samples * frames);
  let s = seed >>> 0;
  for (let i = 0; i < v.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const p = Math.floor(i / samples) % (rows * cols);
    const [x, y, c, f] = [p % cols, Math.floor(p / cols), i % samples, Math.floor(i / (samples * rows * cols))];
    v[i] =
      kind === 'noise'
        ? s % (max + 1)
        : kind === 'smooth'
          ? Math.round((max / 2) * (1 + Math.sin((x + 3 * c + f) / 6) * Math.cos(y / 4)))
          : ((x >> 2) + (y >> 3) + c + f) % 2
            ? max
            : 0;
  }
  return v;
}

/** The samples of a native little-endian DICOM file (8 or 16 bits allocated). */
function nativeSamples(file: string): Uint8Array | Uint16Array {
  const ds = dicomParser.parseDicom(readFileSync(file));
  const el = ds.elements['x7fe00010']!;
  const wide = ds.uint16('x00280100') === 16;
  const n = ds.uint16('x00280010')! * ds.uint16('x00280011')! * ds.uint16('x00280002')!; // without the pad byte
  const bytes = new Uint8Array(ds.byteArray.buffer, ds.byteArray.byteOffset + el.dataOffset, n * (wide ? 2 : 1)).slice();
  return wide ? new Uint16Array(bytes.buffer) : bytes;
}

/** The JPEG code stream of frame k of an encapsulated DICOM file. */
function codeStream(file: string, k = 0): Uint8Array {
  const ds = dicomParser.parseDicom(readFileSync(file));
  return new Uint8Array(dicomParser.readEncapsulatedPixelDataFromFragments(ds, ds.elements['x7fe00010']!, k));
}

test('JPEG Extended 12-bit from dcmcjpeg (smooth, noisy, edges; odd sizes; quality 10-100; multi-frame; 8-bit in 16) equals dcmdjpeg bit for bit', { skip: noDcmtk }, () => {
  withDir((dir) => {
    const cases: { kind: 'smooth' | 'noise' | 'edges'; rows: number; cols: number; args: string[]; frames?: number; bits?: number }[] = [
      { kind: 'noise', rows: R, cols: C, args: [] },
      { kind: 'smooth', rows: 64, cols: 64, args: ['+q', '50'] },
      { kind: 'edges', rows: 100, cols: 77, args: ['+q', '100'] },
      { kind: 'edges', rows: 19, cols: 131, args: ['+q', '10'] },
      { kind: 'smooth', rows: 1, cols: 1, args: [] },
      { kind: 'noise', rows: 8, cols: 9, args: ['+q', '75'] },
      { kind: 'smooth', rows: 23, cols: 17, args: [], frames: 3 },
      { kind: 'edges', rows: R, cols: C, args: ['-ho'] },
      { kind: 'smooth', rows: R, cols: C, args: ['+bt'], bits: 8 },
    ];
    for (const [i, { kind, rows, cols, args, frames, bits }] of cases.entries()) {
      const what = `${kind} ${rows}x${cols}${frames ? ` x${frames} frames` : ''} ${bits ?? 12}-bit ${args.join(' ')}`;
      const v = pattern(kind, rows, cols, 30 + i, bits, 1, frames);
      const src = path.join(dir, `src${i}.dcm`);
      writeFileSync(src, dicomFile({ rows, columns: cols, bitsAllocated: 16, bitsStored: bits ?? 12, ...(frames ? { frames } : {}) }, { pixels: nativeBytes(v, 16) }));
      const jpeg = path.join(dir, `ext${i}.dcm`);
      tool(DCMCJPEG, ['+ee', ...args, src, jpeg]);
      assert.equal(codeStream(jpeg)[codeStream(jpeg).findIndex((b, j, a) => b === 0xff && a[j + 1] === 0xc1) + 4], 12, `${what}: a 12-bit JPEG`);
      const got = lorkdValues(readFileSync(jpeg));
      assert.equal(got.ts, '1.2.840.10008.1.2.4.51');
      const ref = lorkdValues(readFileSync(dcmdjpeg(dir, jpeg))).values;
      assert.equal(maxDiff(got.values, ref), 0, `${what}: differs from dcmdjpeg`);
      if (rows > 1 && !args.includes('100')) assert.ok(maxDiff(got.values, v) > 0, `${what}: the check has teeth (lossy)`);
    }
  });
});

test('JPEG Extended 12-bit with restart markers, and colour 4:4:4 (interleaved or one scan per component, YCbCr; 12- and 8-bit), equals dcmdjpeg bit for bit; 4:2:2 is refused', { skip: noDcmtk }, () => {
  withDir((dir) => {
    // grey, re-encoded with restart intervals (test/helpers/jpeg-restart.ts): through lorkd's DICOM reader
    const v = pattern('smooth', 45, 61, 7);
    const src = path.join(dir, 'grey.dcm');
    writeFileSync(src, dicomFile({ rows: 45, columns: 61, bitsAllocated: 16, bitsStored: 12 }, { pixels: nativeBytes(v, 16) }));
    const jpeg = path.join(dir, 'grey-ext.dcm');
    tool(DCMCJPEG, ['+ee', src, jpeg]);
    const plain = lorkdValues(readFileSync(jpeg)).values;
    for (const interval of [1, 3, 7, 40]) {
      const rst = path.join(dir, `grey-rst${interval}.dcm`);
      writeFileSync(rst, dicomFile({ rows: 45, columns: 61, bitsAllocated: 16, bitsStored: 12 }, { fragments: [withRestarts(codeStream(jpeg), interval)], ts: '1.2.840.10008.1.2.4.51' }));
      const got = lorkdValues(readFileSync(rst)).values;
      assert.equal(maxDiff(got, lorkdValues(readFileSync(dcmdjpeg(dir, rst))).values), 0, `restart interval ${interval}: differs from dcmdjpeg`);
      assert.equal(maxDiff(got, plain), 0, `restart interval ${interval}: differs from the stream without restarts`);
    }
    // colour: lorkd's DICOM reader keeps RGB at 8 bits, so the decoder's samples are compared directly
    // (and the decoder's 8-bit path, which lorkd does not use for DICOM: libjpeg-turbo decodes 8-bit)
    for (const precision of [12, 8] as const)
      for (const [kind, interval, interleaved] of [['smooth', 0, true], ['noise', 0, true], ['edges', 5, true], ['noise', 4, false]] as const) {
        const rgb = pattern(kind, 29, 35, 3, 8, 3);
        const srcRgb = path.join(dir, `rgb-${kind}.dcm`);
        writeFileSync(srcRgb, dicomFile({ rows: 29, columns: 35, samplesPerPixel: 3, bitsAllocated: 8, bitsStored: 8 }, { pixels: nativeBytes(rgb, 8) }));
        const ext = path.join(dir, `rgb-${kind}-${precision}.dcm`);
        tool(DCMCJPEG, ['+ee', ...(precision === 12 ? ['+bt'] : []), '+s4', srcRgb, ext]);
        const stream = interval ? withRestarts(codeStream(ext), interval, interleaved) : codeStream(ext);
        if (!interleaved) assert.equal(stream.filter((b, j) => b === 0xff && stream[j + 1] === 0xda).length, 3, 'three scans');
        const got = decodeJpegSequential(stream);
        assert.equal(got.precision, precision);
        assert.equal(got.colour, 'RGB');
        const refFile = interval ? path.join(dir, `rgb-${kind}-${precision}-rst${interleaved ? '' : '-3scans'}.dcm`) : ext;
        const bits = precision === 12 ? { bitsAllocated: 16, bitsStored: 12 } : { bitsAllocated: 8, bitsStored: 8 };
        if (interval) writeFileSync(refFile, dicomFile({ rows: 29, columns: 35, samplesPerPixel: 3, photometric: 'YBR_FULL', ...bits }, { fragments: [stream], ts: '1.2.840.10008.1.2.4.51' }));
        assert.equal(maxDiff(got.samples, nativeSamples(dcmdjpeg(dir, refFile))), 0, `${precision}-bit colour ${kind}${interval ? ` restart ${interval}` : ''}${interleaved ? '' : ' in 3 scans'}: differs from dcmdjpeg`);
      }
    const sub = path.join(dir, 'rgb-422.dcm');
    tool(DCMCJPEG, ['+ee', '+bt', path.join(dir, 'rgb-smooth.dcm'), sub]);
    assert.equal(decodeJpegSequential(codeStream(path.join(dir, 'rgb-smooth-12.dcm'))).components, 3, 'the same source at 4:4:4 decodes');
    assert.throws(() => decodeJpegSequential(codeStream(sub)), { message: 'JPEG with subsampled components is not supported by the sequential decoder' });
  });
});

test('HTJ2K from ojph_compress (.201, .202 RPCL, .203; 8/12/16-bit grey, RGB): lossless bit-exact, lossy within 1 of ojph_expand', { skip: noOpenjph }, () => {
  withDir((dir) => {
    const lossless: [string, string[]][] = [
      ['1.2.840.10008.1.2.4.201', ['-reversible', 'true', '-prog_order', 'LRCP']],
      ['1.2.840.10008.1.2.4.202', ['-reversible', 'true', '-prog_order', 'RPCL']],
    ];
    const lossy: [string, string[]] = ['1.2.840.10008.1.2.4.203', ['-reversible', 'false', '-qstep', '0.01']];
    let checked = 0;
    for (const [bits, samples] of [[8, 1], [12, 1], [16, 1], [8, 3]] as const) {
      const v = image(bits, 20 + bits + samples, samples);
      const pnm = path.join(dir, `src${bits}-${samples}.${samples === 3 ? 'ppm' : 'pgm'}`);
      writePnm(pnm, v, R, C, 2 ** bits - 1, samples);
      const p: PixelModule = { rows: R, columns: C, samplesPerPixel: samples, bitsAllocated: bits > 8 ? 16 : 8, bitsStored: bits, ...(samples === 3 ? { photometric: 'YBR_RCT' } : {}) };
      for (const [ts, args] of [...lossless, lossy]) {
        const j2c = path.join(dir, `${bits}-${samples}-${ts}.j2c`);
        tool(OJPH_COMPRESS, ['-i', pnm, '-o', j2c, ...args]);
        const ref = path.join(dir, `${bits}-${samples}-${ts}.${samples === 3 ? 'ppm' : 'pgm'}`);
        tool(OJPH_EXPAND, ['-i', j2c, '-o', ref]);
        const dcm = dicomFile(ts === lossy[0] && samples === 3 ? { ...p, photometric: 'YBR_ICT' } : p, { fragments: [new Uint8Array(readFileSync(j2c))], ts });
        const got = lorkdValues(Buffer.from(dcm));
        assert.equal(got.ts, ts);
        if (samples === 3) assert.equal(got.photometric, 'RGB', 'the component transform is undone');
        const what = `${bits}-bit x${samples} ${ts}`;
        if (ts === lossy[0]) {
          assert.ok(maxDiff(got.values, readPnm(ref).values) <= 1, `${what}: max difference from ojph_expand ${maxDiff(got.values, readPnm(ref).values)}`);
          assert.ok(maxDiff(got.values, v) > 0, `${what}: the check has teeth (lossy)`);
        } else assert.equal(maxDiff(got.values, v), 0, `${what}: not bit-exact`);
        checked++;
      }
    }
    assert.equal(checked, 12);
  });
});
