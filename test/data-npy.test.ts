// .npy / .npz reading: hand-built files (bytes written here), every error case, and a file written
// by numpy.savez_compressed when /usr/bin/python3 has numpy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { zipSync, strToU8 } from 'fflate';
import { parseNpy, parseNpz, loadNpz, loadNpy, crc32 } from '../src/data/index.js';
import { UserError } from '../src/tensor/errors.js';

/** An .npy file: magic, version, header-length field, padded header text, data bytes. */
function npyBytes(descr: string, shape: number[], data: Uint8Array, o: { version?: 1 | 2 | 3; fortran?: boolean; header?: string } = {}): Uint8Array {
  const version = o.version ?? 1;
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = o.header ?? `{'descr': '${descr}', 'fortran_order': ${o.fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  const lenBytes = version === 1 ? 2 : 4;
  const pre = 6 + 2 + lenBytes;
  const total = Math.ceil((pre + header.length + 1) / 64) * 64;
  header = header + ' '.repeat(total - pre - header.length - 1) + '\n';
  const h = version === 3 ? new TextEncoder().encode(header) : Uint8Array.from(header, (c) => c.charCodeAt(0));
  const out = new Uint8Array(pre + h.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, h.length, true);
  else dv.setUint32(8, h.length, true);
  out.set(h, pre);
  out.set(data, pre + h.length);
  return out;
}
const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function throwsUser(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected UserError, got ${e}`);
    assert.match(e.message, re);
    assert.ok(!e.message.includes('\n'), 'message is one line');
    return true;
  });
}

test('npy: every supported dtype, C order, values and shapes', () => {
  const f32 = Float32Array.from([1.5, -2, 3.25, 0, 1e-3, 7]);
  let a = parseNpy(npyBytes('<f4', [2, 3], bytesOf(f32)));
  assert.equal(a.dtype, 'float32');
  assert.deepEqual(a.shape, [2, 3]);
  assert.deepEqual(Array.from(a.data as Float32Array), Array.from(f32));

  const f64 = Float64Array.from([Math.PI, -1e300]);
  a = parseNpy(npyBytes('<f8', [2], bytesOf(f64)));
  assert.equal(a.dtype, 'float64');
  assert.deepEqual(Array.from(a.data as Float64Array), [Math.PI, -1e300]);

  const i4 = Int32Array.from([-7, 2147483647, 0, 5]);
  a = parseNpy(npyBytes('<i4', [2, 2, 1], bytesOf(i4)));
  assert.equal(a.dtype, 'int32');
  assert.deepEqual(a.shape, [2, 2, 1]);
  assert.deepEqual(Array.from(a.data as Int32Array), [-7, 2147483647, 0, 5]);

  const i8 = BigInt64Array.from([-(2n ** 40n), 3n]);
  a = parseNpy(npyBytes('<i8', [2], bytesOf(i8)));
  assert.equal(a.dtype, 'int64');
  assert.deepEqual(Array.from(a.data as BigInt64Array), [-(2n ** 40n), 3n]);

  a = parseNpy(npyBytes('|u1', [3], Uint8Array.from([0, 128, 255])));
  assert.equal(a.dtype, 'uint8');
  assert.deepEqual(Array.from(a.data as Uint8Array), [0, 128, 255]);

  a = parseNpy(npyBytes('|b1', [2], Uint8Array.from([1, 0])));
  assert.equal(a.dtype, 'bool');
  assert.deepEqual(Array.from(a.data as Uint8Array), [1, 0]);

  // scalar and empty arrays
  a = parseNpy(npyBytes('<f8', [], bytesOf(Float64Array.from([2.5])), { header: "{'descr': '<f8', 'fortran_order': False, 'shape': (), }" }));
  assert.deepEqual(a.shape, []);
  assert.deepEqual(Array.from(a.data as Float64Array), [2.5]);
  a = parseNpy(npyBytes('<i4', [0, 3], new Uint8Array(0)));
  assert.deepEqual(a.shape, [0, 3]);
  assert.equal(a.data.length, 0);
});

test('npy: format versions 2.0 and 3.0, key order and quoting variants', () => {
  const d = Int32Array.from([1, 2, 3]);
  for (const version of [2, 3] as const) {
    const a = parseNpy(npyBytes('<i4', [3], bytesOf(d), { version }));
    assert.deepEqual(Array.from(a.data as Int32Array), [1, 2, 3]);
  }
  // keys in another order, double quotes, no trailing comma (all valid Python)
  const a = parseNpy(npyBytes('', [], bytesOf(d), { header: '{"shape": (3,), "fortran_order": False, "descr": "<i4"}' }));
  assert.deepEqual(Array.from(a.data as Int32Array), [1, 2, 3]);
});

test('npy: unaligned input is copied, aligned input is viewed', () => {
  const f = npyBytes('<f8', [2], bytesOf(Float64Array.from([1.25, -4])));
  const shifted = new Uint8Array(f.length + 3);
  shifted.set(f, 3);
  const a = parseNpy(shifted.subarray(3));
  assert.deepEqual(Array.from(a.data as Float64Array), [1.25, -4]);
  const b = parseNpy(f);
  assert.equal(b.data.buffer, f.buffer);
});

test('npy: errors name the file and the problem', () => {
  const d = bytesOf(Float32Array.from([1, 2]));
  const ok = npyBytes('<f4', [2], d);
  throwsUser(() => parseNpy(new Uint8Array(20), 'x.npy'), /^x\.npy: not a \.npy file/);
  const v9 = ok.slice();
  v9[6] = 9;
  throwsUser(() => parseNpy(v9, 'x.npy'), /^x\.npy: unsupported \.npy format version 9\.0/);
  throwsUser(() => parseNpy(npyBytes('<f4', [2], d, { fortran: true }), 'f.npy'), /^f\.npy: Fortran-ordered/);
  throwsUser(() => parseNpy(npyBytes('<f2', [2], new Uint8Array(4)), 'h.npy'), /^h\.npy: unsupported dtype '<f2'/);
  throwsUser(() => parseNpy(npyBytes('<c8', [1], new Uint8Array(8))), /unsupported dtype '<c8'/);
  throwsUser(() => parseNpy(npyBytes('>f4', [2], d), 'be.npy'), /^be\.npy: dtype '>f4' is big-endian/);
  throwsUser(() => parseNpy(npyBytes('>i8', [1], new Uint8Array(8))), /big-endian/);
  throwsUser(
    () => parseNpy(npyBytes('', [1], new Uint8Array(8), { header: "{'descr': [('a', '<f4'), ('b', '<f4')], 'fortran_order': False, 'shape': (1,), }" })),
    /structured arrays are not supported/,
  );
  throwsUser(() => parseNpy(ok.subarray(0, ok.length - 1), 't.npy'), /^t\.npy: truncated data: shape \[2\] float32 needs 8 bytes, file has 7/);
  throwsUser(() => parseNpy(ok.subarray(0, 40), 't.npy'), /^t\.npy: truncated header/);
  const long = new Uint8Array(ok.length + 4);
  long.set(ok);
  throwsUser(() => parseNpy(long, 'l.npy'), /4 unexpected bytes after the data/);
  throwsUser(() => parseNpy(npyBytes('', [], d, { header: "{'descr': '<f4', 'shape': (2,), }" })), /no 'fortran_order' key/);
  throwsUser(() => parseNpy(npyBytes('', [], d, { header: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }" })), /'shape' must be a tuple/);
  throwsUser(() => parseNpy(npyBytes('', [], d, { header: "{'descr': '<f4', 'fortran_order': False, 'shape': (2,) " })), /corrupt header/);
  throwsUser(() => parseNpy(npyBytes('', [], d, { header: "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }" })), /corrupt header/);
  throwsUser(() => loadNpy('/nonexistent/dir/a.npy'), /^\/nonexistent\/dir\/a\.npy: cannot read file \(ENOENT\)/);
});

function sampleZip(level: 0 | 6 = 6): Uint8Array {
  return zipSync(
    {
      'images.npy': [npyBytes('|u1', [2, 2, 2], Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8])), { level }],
      'labels.npy': [npyBytes('<i8', [2], bytesOf(BigInt64Array.from([0n, 4n]))), { level }],
      'x.npy': [npyBytes('<f4', [1], bytesOf(Float32Array.from([0.5]))), { level }],
    },
  );
}

test('npz: members by key, stored and deflated', () => {
  for (const level of [0, 6] as const) {
    const z = parseNpz(sampleZip(level), 'a.npz');
    assert.deepEqual(z.keys.sort(), ['images', 'labels', 'x']);
    assert.ok(z.has('images') && !z.has('images.npy'));
    const im = z.get('images');
    assert.deepEqual(im.shape, [2, 2, 2]);
    assert.deepEqual(Array.from(im.data as Uint8Array), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(Array.from(z.get('labels').data as BigInt64Array), [0n, 4n]);
    assert.equal(z.get('labels'), z.get('labels'), 'parsed once, cached');
  }
  const only = parseNpz(sampleZip(), 'a.npz', { keys: ['x'] });
  assert.deepEqual(only.keys, ['x']);
});

test('npz: CRC-32 matches the zip checksum of known strings', () => {
  // Check values of the IEEE CRC-32 (e.g. RFC 3720 B.4 lists 0xCBF43926 for "123456789").
  assert.equal(crc32(strToU8('123456789')), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
  assert.equal(crc32(strToU8('The quick brown fox jumps over the lazy dog')), 0x414fa339);
});

test('npz: errors for missing keys, truncation, corruption, non-zip and bad members', () => {
  const z = sampleZip();
  throwsUser(() => parseNpz(z, 'a.npz').get('nope'), /^a\.npz: no array 'nope' in the archive \(it has: images, labels, x\)/);
  throwsUser(() => parseNpz(z, 'a.npz', { keys: ['x', 'train_images'] }), /^a\.npz: no array 'train_images'/);
  throwsUser(() => parseNpz(z.subarray(0, z.length - 30), 'cut.npz'), /^cut\.npz: not a valid npz \(zip\) archive, or truncated/);
  throwsUser(() => parseNpz(z.subarray(0, 50), 'cut.npz'), /^cut\.npz: /);
  throwsUser(() => parseNpz(strToU8('definitely not a zip file, just text'), 'txt.npz'), /^txt\.npz: not a valid npz/);
  // flip one data byte of a stored member: only the CRC check can see it
  const stored = sampleZip(0);
  let at = -1;
  for (let i = 0; i + 8 <= stored.length && at < 0; i++) if ([1, 2, 3, 4, 5, 6, 7, 8].every((v, k) => stored[i + k] === v)) at = i + 4;
  assert.ok(at > 0, "images' data found in the stored zip");
  const bad = stored.slice();
  bad[at] ^= 0x40;
  throwsUser(() => parseNpz(bad, 'bad.npz'), /^bad\.npz: member 'images\.npy' is corrupt \(CRC-32 mismatch\)/);
  // a member that is not an .npy file
  const notNpy = zipSync({ 'a.npy': strToU8('hello there, not numpy') });
  throwsUser(() => parseNpz(notNpy, 'n.npz').get('a'), /^n\.npz: a\.npy: not a \.npy file/);
  // member with unsupported dtype: the message names archive and member
  const f16 = zipSync({ 'h.npy': npyBytes('<f2', [1], new Uint8Array(2)) });
  throwsUser(() => parseNpz(f16, 'h.npz').get('h'), /^h\.npz: h\.npy: unsupported dtype '<f2'/);
  throwsUser(() => loadNpz('/nonexistent/b.npz'), /^\/nonexistent\/b\.npz: cannot read file/);
});

const hasNumpy = spawnSync('/usr/bin/python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;

test('npz: a file written by numpy.savez_compressed', { skip: hasNumpy ? false : '/usr/bin/python3 with numpy not available' }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-npz-'));
  try {
    const file = path.join(dir, 'np.npz');
    const py = [
      'import numpy as np, sys',
      'np.savez_compressed(sys.argv[1],',
      '  u8=(np.arange(2*3*4) % 251).astype(np.uint8).reshape(2, 3, 4),',
      '  i8=np.arange(-5, 5, dtype=np.int64).reshape(5, 2),',
      '  i4=np.array([-(2**31), 2**31 - 1], dtype=np.int32),',
      '  f4=np.linspace(-1, 1, 7, dtype=np.float32),',
      '  f8=np.array([[np.pi, np.e]]),',
      '  b1=np.array([True, False, True]),',
      '  big=(np.arange(300000) % 256).astype(np.uint8))',
    ].join('\n');
    const r = spawnSync('/usr/bin/python3', ['-c', py, file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const z = loadNpz(file);
    assert.deepEqual(z.keys.sort(), ['b1', 'big', 'f4', 'f8', 'i4', 'i8', 'u8']);
    const u8 = z.get('u8');
    assert.deepEqual([u8.dtype, ...u8.shape], ['uint8', 2, 3, 4]);
    assert.deepEqual(Array.from(u8.data as Uint8Array), Array.from({ length: 24 }, (_, i) => i % 251));
    const i8 = z.get('i8');
    assert.deepEqual(i8.shape, [5, 2]);
    assert.deepEqual(Array.from(i8.data as BigInt64Array, Number), Array.from({ length: 10 }, (_, i) => i - 5));
    assert.deepEqual(Array.from(z.get('i4').data as Int32Array), [-(2 ** 31), 2 ** 31 - 1]);
    const f4 = Array.from(z.get('f4').data as Float32Array);
    assert.equal(f4.length, 7);
    f4.forEach((v, i) => assert.equal(v, Math.fround(-1 + (2 * i) / 6)));
    const f8 = z.get('f8');
    assert.deepEqual(f8.shape, [1, 2]);
    assert.deepEqual(Array.from(f8.data as Float64Array), [Math.PI, Math.E]);
    assert.deepEqual([z.get('b1').dtype, ...Array.from(z.get('b1').data as Uint8Array)], ['bool', 1, 0, 1]);
    const big = z.get('big').data as Uint8Array;
    assert.equal(big.length, 300000);
    assert.ok(big.every((v, i) => v === i % 256));
    // numpy's own truncation: cut the file written by numpy
    writeFileSync(path.join(dir, 'cut.npz'), readFileSync(file).subarray(0, 1000));
    throwsUser(() => loadNpz(path.join(dir, 'cut.npz')), /cut\.npz: not a valid npz/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

