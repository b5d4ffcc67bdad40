// safetensors: bit-exact round trips, header layout, refusal of malformed files, PyTorch interop.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Tensor, tensor, arange, tidy, memory, UserError, type DType, DTYPE_BYTES } from '../src/tensor/index.js';
import { N } from '../src/tensor/ops-native.js';
import { saveSafetensors, loadSafetensors, encodeSafetensors, decodeSafetensors } from '../src/io/safetensors.js';
import { hex } from './helpers/assert.js';
import { runPython, skipWithoutTorch } from './helpers/python.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-st-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();

/** One tensor per dtype with awkward bit patterns (NaN payloads, -0, infinities, extremes). */
function samples(): { name: string; dtype: DType; shape: number[]; raw: Uint8Array; t: Tensor }[] {
  const f32 = new Uint32Array([0x7fc00001, 0xffc12345, 0x7f800001, 0x80000000, 0x7f800000, 0xff800000, 0x00000001, 0x3f800000]);
  const f64 = new BigUint64Array([0x7ff8000000000123n, 0xfff0000000000001n, 0x8000000000000000n, 0x7fefffffffffffffn, 0x0000000000000001n, 0x3ff0000000000000n]);
  const f16 = new Uint16Array([0x7e01, 0xfc01, 0x8000, 0x7c00, 0x0001, 0x3c00]);
  const bf16 = new Uint16Array([0x7fc1, 0xff81, 0x8000, 0x7f80, 0x0001, 0x3f80]);
  const i64 = new BigInt64Array([9007199254740993n, -9223372036854775808n, 9223372036854775807n, 0n, -1n, 42n]);
  const list: [string, DType, number[], ArrayBufferView, () => Tensor][] = [
    ['f32', 'float32', [2, 4], f32, () => tensor(new Float32Array(f32.buffer), [2, 4])],
    ['f64', 'float64', [3, 2], f64, () => tensor(new Float64Array(f64.buffer), [3, 2])],
    ['f16', 'float16', [6], f16, () => tensor(f16, [6], { dtype: 'float16' })],
    // tensor(Uint16Array, {dtype: 'bfloat16'}) converts from float16 by value, so build from bits.
    ['bf16', 'bfloat16', [2, 3], bf16, () => Tensor.wrap(N.fromBuffer(bf16, [2, 3], 'bfloat16'))],
    ['i64', 'int64', [6], i64, () => tensor(i64, [6])],
    ['i32', 'int32', [2, 2], new Int32Array([-2147483648, 2147483647, 0, -1]), () => tensor(new Int32Array([-2147483648, 2147483647, 0, -1]), [2, 2])],
    ['i16', 'int16', [3], new Int16Array([-32768, 32767, -1]), () => tensor(new Int16Array([-32768, 32767, -1]), [3])],
    ['i8', 'int8', [3], new Int8Array([-128, 127, -1]), () => tensor(new Int8Array([-128, 127, -1]), [3])],
    ['u8', 'uint8', [5], new Uint8Array([0, 1, 127, 128, 255]), () => tensor(new Uint8Array([0, 1, 127, 128, 255]), [5])],
    ['bool', 'bool', [2, 2], new Uint8Array([1, 0, 0, 1]), () => tensor(new Uint8Array([1, 0, 0, 1]), [2, 2], { dtype: 'bool' })],
    ['scalar', 'float64', [], new Float64Array([-2.5]), () => tensor(new Float64Array([-2.5]), [])],
    ['empty', 'float32', [0, 3], new Float32Array(0), () => tensor(new Float32Array(0), [0, 3])],
  ];
  return list.map(([name, dtype, shape, raw, make]) => ({ name, dtype, shape, raw: bytesOf(raw), t: make() }));
}

function checkSamples(loaded: Map<string, Tensor>, ref: ReturnType<typeof samples>): void {
  assert.deepEqual([...loaded.keys()].sort(), ref.map((s) => s.name).sort());
  for (const s of ref) {
    const t = loaded.get(s.name)!;
    assert.equal(t.dtype, s.dtype, s.name);
    assert.deepEqual(t.shape, s.shape, s.name);
    assert.equal(hex(t.toBytes()), hex(s.raw), `${s.name}: bytes differ`);
  }
}

/** Builds a safetensors file by hand: u64 length, header text (padded to 8 unless told), data. */
function rawFile(header: string | object, data: Uint8Array, o: { pad?: boolean; length?: bigint } = {}): Uint8Array {
  let json = typeof header === 'string' ? header : JSON.stringify(header);
  if (o.pad !== false) json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const h = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, o.length ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function refused(bytes: Uint8Array, pattern: RegExp, name = 'bad.safetensors'): void {
  const before = memory().liveTensors;
  assert.throws(
    () => decodeSafetensors(bytes, name),
    (e: unknown) => {
      assert.ok(e instanceof UserError, `expected UserError, got ${String(e)}`);
      assert.ok(e.message.startsWith(`${name}: `), `message does not name the file: ${e.message}`);
      assert.match(e.message, pattern);
      return true;
    },
  );
  assert.equal(memory().liveTensors, before, 'a refused file must not leave tensors behind');
}

const F32 = (shape: number[], begin: number, end: number) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

describe('round trip', () => {
  test('every dtype is bit-exact through a file, including NaN payloads, -0 and extremes', () =>
    tidy(() => {
      const ref = samples();
      const file = path.join(dir, 'all.safetensors');
      saveSafetensors(file, Object.fromEntries(ref.map((s) => [s.name, s.t])));
      checkSamples(loadSafetensors(file, { allowNonFinite: true }).tensors, ref);
      // the temporary file was renamed, nothing else is left in the folder
      assert.deepEqual(readdirSync(dir).filter((f) => f.includes('all.safetensors')), ['all.safetensors']);
    }));

  test('a Map and the buffer variants give the same bytes as a file', () =>
    tidy(() => {
      const ref = samples();
      const map = new Map(ref.map((s) => [s.name, s.t] as const));
      const bytes = encodeSafetensors(map, { a: 'b' });
      const file = path.join(dir, 'map.safetensors');
      saveSafetensors(file, map, { a: 'b' });
      assert.equal(hex(readFileSync(file)), hex(bytes));
      checkSamples(decodeSafetensors(bytes).tensors, ref);
    }));

  test('metadata round trips, including unicode and empty strings', () =>
    tidy(() => {
      const metadata = { tasks: JSON.stringify(['derma', 'path']), rank: '8', note: 'é ✓ "quoted"\n', empty: '' };
      const file = path.join(dir, 'meta.safetensors');
      saveSafetensors(file, { w: arange(3, undefined, 1, { dtype: 'float32' }) }, metadata);
      const back = loadSafetensors(file);
      assert.deepEqual(back.metadata, metadata);
      assert.deepEqual(back.tensors.get('w')!.toNumbers(), [0, 1, 2]);
      assert.deepEqual(decodeSafetensors(encodeSafetensors({ w: back.tensors.get('w')! })).metadata, {});
    }));

  test('non-contiguous tensors are written in C order', () =>
    tidy(() => {
      const t = tensor([1, 2, 3, 4, 5, 6], [2, 3]).t(); // [[1,4],[2,5],[3,6]]
      const back = decodeSafetensors(encodeSafetensors({ t })).tensors.get('t')!;
      assert.deepEqual(back.shape, [3, 2]);
      assert.deepEqual(back.toNumbers(), [1, 4, 2, 5, 3, 6]);
    }));

  test('saving over an existing file replaces it', () =>
    tidy(() => {
      const file = path.join(dir, 'over.safetensors');
      saveSafetensors(file, { a: tensor([1, 2, 3]) });
      saveSafetensors(file, { b: tensor([4]) });
      const back = loadSafetensors(file).tensors;
      assert.deepEqual([...back.keys()], ['b']);
      assert.deepEqual(back.get('b')!.toNumbers(), [4]);
    }));
});

describe('layout', () => {
  test('header: little-endian length, padded with spaces to 8, sorted by alignment then name, offsets tile the data', () =>
    tidy(() => {
      const bytes = encodeSafetensors(
        { zb: tensor(new Uint8Array([1, 2, 3])), a: tensor([1, 2]), m: tensor(new Float64Array([3])), b: tensor(new Int16Array([5])) },
        { k: 'v' },
      );
      const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
      assert.equal(n % 8, 0);
      const text = Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8');
      assert.match(text, /^\{.*\} *$/);
      const header = JSON.parse(text) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
      assert.deepEqual(header.__metadata__, { k: 'v' });
      const names = Object.keys(header).filter((k) => k !== '__metadata__');
      const order = names.sort((p, q) => header[p]!.data_offsets[0] - header[q]!.data_offsets[0]);
      assert.deepEqual(order, ['m', 'a', 'b', 'zb']);
      assert.deepEqual(header.m, { dtype: 'F64', shape: [1], data_offsets: [0, 8] });
      assert.deepEqual(header.a, { dtype: 'F32', shape: [2], data_offsets: [8, 16] });
      assert.deepEqual(header.b, { dtype: 'I16', shape: [1], data_offsets: [16, 18] });
      assert.deepEqual(header.zb, { dtype: 'U8', shape: [3], data_offsets: [18, 21] });
      assert.equal(bytes.length, 8 + n + 21);
      for (const k of names) {
        const size = DTYPE_BYTES[{ F64: 'float64', F32: 'float32', I16: 'int16', U8: 'uint8' }[header[k]!.dtype] as DType];
        assert.equal((8 + n + header[k]!.data_offsets[0]) % size, 0, `${k} is aligned`);
      }
    }));

  test('reads files whose tensors are unaligned and listed in any order', () =>
    tidy(() => {
      const data = new Uint8Array(3 + 8);
      data.set([7, 8, 9], 0);
      data.set(bytesOf(new Float64Array([Math.PI])), 3);
      const file = rawFile({ z: { dtype: 'F64', shape: [], data_offsets: [3, 11] }, a: { dtype: 'U8', shape: [3], data_offsets: [0, 3] } }, data);
      const { tensors } = decodeSafetensors(file);
      assert.equal(tensors.get('z')!.item(), Math.PI);
      assert.deepEqual(tensors.get('a')!.toNumbers(), [7, 8, 9]);
    }));
});

describe('malformed files are refused with a UserError naming the file', () => {
  const eight = new Uint8Array(8);
  test('truncated: fewer than 8 bytes', () => refused(new Uint8Array(5), /truncated/));
  test('header length beyond the end of the file', () => refused(rawFile('{}', new Uint8Array(0), { length: 1000n }), /header length 1000 is beyond the end of the file/));
  test('header length with the top bit set', () => refused(rawFile('{}', new Uint8Array(0), { length: 1n << 63n }), /beyond the end of the file/));
  test('non-JSON header', () => refused(rawFile('{"a": [1, 2', eight), /header is not valid JSON/));
  test('header that is not an object', () => refused(rawFile('[1, 2]', new Uint8Array(0)), /header must be a JSON object/));
  test('invalid UTF-8 in the header', () => {
    const f = rawFile('{"a":1}', new Uint8Array(0), { pad: false });
    f[10] = 0xff;
    refused(f, /not valid UTF-8/);
  });
  test('non-string metadata value', () =>
    refused(rawFile({ __metadata__: { epoch: 3 } }, new Uint8Array(0)), /metadata value of 'epoch' must be a string, got 3/));
  test('unknown dtype', () =>
    refused(rawFile({ w: { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }, eight), /tensor 'w' has unknown dtype "C64"/));
  test('shape whose byte size does not match the offsets', () =>
    refused(rawFile({ w: F32([3], 0, 8) }, eight), /tensor 'w' \(F32\[3\]\) needs 12 bytes but data_offsets \[0, 8\] span 8/));
  test('negative or fractional shape', () => refused(rawFile({ w: F32([-2], 0, 8) }, eight), /tensor 'w' has an invalid shape \[-2\]/));
  test('begin after end', () => refused(rawFile({ w: F32([0], 8, 4) }, eight), /invalid data_offsets \[8,4\]/));
  test('overlapping offsets', () =>
    refused(rawFile({ a: F32([2], 0, 8), b: F32([1], 4, 8) }, eight), /tensor 'b' data_offsets \[4, 8\] overlap tensor 'a' \[0, 8\]/));
  test('offsets out of range', () => refused(rawFile({ a: F32([2], 0, 8), b: F32([1], 8, 12) }, eight), /tensor 'b' data_offsets \[8, 12\] are out of range: the data buffer has 8 bytes/));
  test('gap between tensors', () => refused(rawFile({ a: F32([1], 0, 4), b: F32([1], 8, 12) }, new Uint8Array(12)), /gap: bytes \[4, 8\) belong to no tensor/));
  test('gap at the start', () => refused(rawFile({ a: F32([1], 4, 8) }, eight), /gap: bytes \[0, 4\) belong to no tensor/));
  test('trailing bytes after the last tensor', () => refused(rawFile({ a: F32([1], 0, 4) }, eight), /gap: bytes \[4, 8\) belong to no tensor/));
  test('duplicate keys', () =>
    refused(rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', eight), /duplicate key 'a'/));
  test('duplicate metadata keys', () => refused(rawFile('{"__metadata__":{"k":"1", "k" :"2"}}', new Uint8Array(0)), /duplicate key 'k'/));
  test('booleans other than 0 and 1', () =>
    refused(rawFile({ m: { dtype: 'BOOL', shape: [2], data_offsets: [0, 2] } }, new Uint8Array([1, 2])), /'m' \(BOOL\) holds byte 2/));
  test('a valid hand-made file is accepted (the cases above differ from it in one thing)', () =>
    tidy(() => {
      const t = decodeSafetensors(rawFile({ a: F32([1], 0, 4), b: F32([1], 4, 8) }, bytesOf(new Float32Array([1.5, -2]))), 'ok').tensors;
      assert.deepEqual([t.get('a')!.item(), t.get('b')!.item()], [1.5, -2]);
    }));
  test('a file cut short on disk names the path', () =>
    tidy(() => {
      const file = path.join(dir, 'cut.safetensors');
      saveSafetensors(file, { w: tensor([1, 2, 3, 4]) });
      const full = readFileSync(file);
      writeFileSync(file, full.subarray(0, full.length - 4));
      assert.throws(() => loadSafetensors(file), (e: unknown) => e instanceof UserError && e.message.startsWith(`${file}: `) && /out of range/.test(e.message));
    }));
  test('a missing file names the path', () => {
    const file = path.join(dir, 'nope.safetensors');
    assert.throws(() => loadSafetensors(file), (e: unknown) => e instanceof UserError && e.message.includes(file));
  });
});

describe('writing refuses bad input', () => {
  test('non-string metadata values', () =>
    tidy(() => {
      const meta = { epoch: 3 } as unknown as Record<string, string>;
      assert.throws(() => encodeSafetensors({ w: tensor([1]) }, meta), (e: unknown) => e instanceof UserError && /metadata value of 'epoch' must be a string/.test(e.message));
    }));
  test('a tensor named __metadata__', () =>
    tidy(() => assert.throws(() => encodeSafetensors({ __metadata__: tensor([1]) }), (e: unknown) => e instanceof UserError && /reserved/.test(e.message))));
  test('a disposed tensor, and the target file is left untouched', () => {
    const file = path.join(dir, 'keep.safetensors');
    tidy(() => saveSafetensors(file, { w: tensor([1, 2]) }));
    const before = readFileSync(file);
    const t = tensor([1]);
    t.dispose();
    assert.throws(() => saveSafetensors(file, { w: t }), (e: unknown) => e instanceof UserError && e.message.startsWith(file) && /'w' was disposed/.test(e.message));
    assert.equal(hex(readFileSync(file)), hex(before));
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
  });
});

// ------------------------------------------------------------------ PyTorch interop
const PY_READ_WRITE = String.raw`
import sys, json, struct, torch
DT = {'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16, 'I64': torch.int64,
      'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8, 'U8': torch.uint8, 'BOOL': torch.bool}
NAME = {v: k for k, v in DT.items()}

def describe(x):
    flat = x.contiguous().reshape(-1)
    if x.dtype.is_floating_point:
        vals = [repr(v) for v in flat.double().tolist()]
    else:
        vals = [str(int(v)) for v in flat.tolist()]
    return {'dtype': NAME[x.dtype], 'shape': list(x.shape), 'hex': flat.view(torch.uint8).numpy().tobytes().hex(), 'values': vals}

# 1. read the file lorkd wrote, by hand
raw = open(sys.argv[1], 'rb').read()
n, = struct.unpack('<Q', raw[:8])
header = json.loads(raw[8:8 + n].decode('utf-8'))
meta = header.pop('__metadata__', {})
data = bytearray(raw[8 + n:])
read = {}
for name, e in header.items():
    b, end = e['data_offsets']
    dt = DT[e['dtype']]
    x = torch.frombuffer(data[b:end], dtype=dt) if end > b else torch.empty(0, dtype=dt)
    read[name] = describe(x.reshape(e['shape']))

# 2. write a file by hand, in name order (unaligned), for lorkd to read
g = torch.Generator().manual_seed(0)
ts = {
    'bf16': torch.tensor([1.5, -0.0, float('nan'), 3.0e38], dtype=torch.bfloat16).reshape(2, 2),
    'bool': torch.tensor([[True, False, True]]),
    'f16': torch.tensor([0.1, -2.5, 65504.0, float('-inf'), 6e-8], dtype=torch.float16),
    'f32': torch.randn(2, 3, generator=g),
    'f64': torch.randn(4, generator=g, dtype=torch.float64),
    'i16': torch.tensor([-32768, 7, 32767], dtype=torch.int16),
    'i32': torch.tensor([[-5, 2147483647]], dtype=torch.int32),
    'i64': torch.tensor([2**62 + 1, -3, 0]),
    'i8': torch.tensor([-128, 0, 127], dtype=torch.int8),
    'scalar': torch.tensor(7.25, dtype=torch.float64),
    'transposed': torch.arange(6.0).reshape(2, 3).t(),
    'u8': torch.arange(250, 256, dtype=torch.uint8),
    'zero': torch.zeros(0, 3),
}
hdr, chunks, off = {'__metadata__': {'task': 'derma', 'note': 'é✓'}}, [], 0
for name in sorted(ts):
    x = ts[name].contiguous()
    b = x.reshape(-1).view(torch.uint8).numpy().tobytes()
    hdr[name] = {'dtype': NAME[x.dtype], 'shape': list(x.shape), 'data_offsets': [off, off + len(b)]}
    off += len(b)
    chunks.append(b)
h = json.dumps(hdr).encode('utf-8')
h += b' ' * ((8 - len(h) % 8) % 8)
with open(sys.argv[2], 'wb') as f:
    f.write(struct.pack('<Q', len(h)) + h + b''.join(chunks))
print(json.dumps({'read': read, 'meta': meta, 'written': {k: describe(v) for k, v in ts.items()}}))
`;

interface PyTensor {
  dtype: string;
  shape: number[];
  hex: string;
  values: string[];
}
const ST_NAME: Record<DType, string> = {
  float64: 'F64', float32: 'F32', float16: 'F16', bfloat16: 'BF16', int64: 'I64', int32: 'I32', int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};
const pyNumber = (s: string): number => (s === 'nan' ? NaN : s === 'inf' ? Infinity : s === '-inf' ? -Infinity : Number(s));

/** Compares a lorkd tensor with Python's description: dtype, shape, bytes and values. */
function samePy(t: Tensor, p: PyTensor, what: string): void {
  assert.equal(ST_NAME[t.dtype], p.dtype, `${what}: dtype`);
  assert.deepEqual(t.shape, p.shape, `${what}: shape`);
  assert.equal(hex(t.toBytes()), p.hex, `${what}: bytes`);
  if (t.dtype === 'int64') {
    assert.deepEqual(Array.from(t.toArray() as BigInt64Array, String), p.values, `${what}: values`);
    return;
  }
  const float = ['float16', 'bfloat16', 'float32', 'float64'].includes(t.dtype);
  const mine = tidy(() => (float ? t.to('float64') : t.to('int64')).toNumbers());
  mine.forEach((v, i) => assert.ok(Object.is(v, pyNumber(p.values[i]!)), `${what}[${i}]: lorkd ${v}, python ${p.values[i]}`));
}

describe('interop with PyTorch (files parsed by hand in Python)', { skip: skipWithoutTorch() }, () => {
  let py: { read: Record<string, PyTensor>; meta: Record<string, string>; written: Record<string, PyTensor> };
  const ours = path.join(dir, 'lorkd.safetensors');
  const theirs = path.join(dir, 'python.safetensors');
  let ref: ReturnType<typeof samples>;
  before(() => {
    ref = samples();
    saveSafetensors(ours, Object.fromEntries(ref.map((s) => [s.name, s.t])), { task: 'derma', rank: '4' });
    py = JSON.parse(runPython(PY_READ_WRITE, [ours, theirs]));
  });
  after(() => ref?.forEach((s) => s.t.dispose()));

  test('Python reads what lorkd wrote: same dtypes, shapes, bytes and values', () => {
    assert.deepEqual(py.meta, { task: 'derma', rank: '4' });
    assert.deepEqual(Object.keys(py.read).sort(), ref.map((s) => s.name).sort());
    for (const s of ref) samePy(s.t, py.read[s.name]!, `python read ${s.name}`);
  });

  test('lorkd reads what Python wrote: same dtypes, shapes, bytes and values', () =>
    tidy(() => {
      const { tensors, metadata } = loadSafetensors(theirs, { allowNonFinite: true });
      assert.deepEqual(metadata, { task: 'derma', note: 'é✓' });
      assert.deepEqual([...tensors.keys()].sort(), Object.keys(py.written).sort());
      for (const [name, p] of Object.entries(py.written)) samePy(tensors.get(name)!, p, `lorkd read ${name}`);
    }));
});
