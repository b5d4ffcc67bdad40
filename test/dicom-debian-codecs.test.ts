// Compressed DICOM made by Debian's encoders, independent of lorkd and of its npm decoders, and
// decoded by lorkd (optional: each test skips without its tool):
//  - DCMTK's dcmcjpeg: JPEG Lossless, Process 14 SV1 (.70) and other predictors (.57), 8-, 12- and
//    16-bit, signed and unsigned, multi-frame: lorkd's values equal the source's bit for bit; JPEG
//    Extended 8-bit equals DCMTK's own decoder (dcmdjpeg) within 1 level; 12-bit is refused in one line.
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
import { decodeDicom } from '../src/data/dicom.js';
import { UserError } from '../src/tensor/errors.js';
import { DCMCJPEG, dicomFile, hasDcmtk, hasOpenjph, OJPH_COMPRESS, OJPH_EXPAND, type PixelModule, readPnm, tool, writePnm } from './helpers/dicom-write.js';

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

test('JPEG Extended from dcmcjpeg: 8-bit equals dcmdjpeg within 1 level; 12-bit is refused in one line', { skip: noDcmtk }, () => {
  withDir((dir) => {
    const v8 = image(8, 11);
    const src8 = path.join(dir, 'src8.dcm');
    writeFileSync(src8, dicomFile({ rows: R, columns: C, bitsAllocated: 8, bitsStored: 8 }, { pixels: nativeBytes(v8, 8) }));
    const jpeg8 = path.join(dir, 'ext8.dcm');
    tool(DCMCJPEG, ['+ee', src8, jpeg8]);
    const back = path.join(dir, 'back8.dcm');
    tool('/usr/bin/dcmdjpeg', [jpeg8, back]);
    const got = lorkdValues(readFileSync(jpeg8));
    assert.equal(got.ts, '1.2.840.10008.1.2.4.51');
    const ref = lorkdValues(readFileSync(back)).values;
    assert.ok(maxDiff(got.values, ref) <= 1, `8-bit JPEG Extended: max difference from dcmdjpeg ${maxDiff(got.values, ref)}`);
    assert.ok(maxDiff(got.values, v8) > 0, 'the check has teeth: the JPEG is lossy');

    const v12 = image(12, 12);
    const src12 = path.join(dir, 'src12.dcm');
    writeFileSync(src12, dicomFile({ rows: R, columns: C, bitsAllocated: 16, bitsStored: 12 }, { pixels: nativeBytes(v12, 16) }));
    const jpeg12 = path.join(dir, 'ext12.dcm');
    tool(DCMCJPEG, ['+ee', src12, jpeg12]);
    assert.throws(
      () => decodeDicom(readFileSync(jpeg12), 'ext12.dcm'),
      (e: Error) => e instanceof UserError && e.message === 'ext12.dcm: JPEG Extended with 12 bits stored is not supported (8-bit is; no 12-bit JPEG decoder is published on npm)',
    );
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
