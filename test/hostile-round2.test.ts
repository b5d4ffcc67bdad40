// Hostile inputs, round 2 (issue 23), through the CLI: each class ends in its exit code and one
// `lorkd:` line (predict: one line per bad input and its summary), within seconds, at a bounded
// peak memory. A legal 1-pixel-wide PNG at the pixel limit; FIFOs given to every command that
// reads a file; /dev/zero as an input; metadata over a limit (expert input_size, checkpoint rank,
// npz image size); ONNX graphs that claim huge tensors or fail inside onnxruntime; a deflated
// DICOM bomb; compare re-run with other settings; a failed launch.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { HAVE_TIME, lorkdMeasured, expectOneLine, tallPng, type Measured } from './helpers/hostile.js';
import { REPO, writeTaskNpz } from './helpers/pipeline.js';
import { writeDecomposition, writeExperts } from './serve-fixtures.js';
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors.js';
import { decodeModel, encodeModel } from '../src/export/onnx/proto.js';
import { distAvailable } from '../src/dist/index.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-hostile-r2-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let checkpoint: string;
let expert: string;
let onnx: string;
let fifo: string;
/** Peak RSS of `lorkd predict` with the expert on one small image (measured in before()). */
let baselineMiB = NaN;

const SMALL = path.join(dir, 'small.png');

before(() => {
  checkpoint = writeDecomposition(path.join(dir, 'dm.safetensors'), 3);
  expert = writeExperts(checkpoint, path.join(dir, 'experts')).get('breast')!;
  writeFileSync(SMALL, tallPng(8));
  fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  onnx = path.join(dir, 'breast.onnx');
  const r = lorkdMeasured(['export', '--model', expert, '--format', 'onnx', '--out', onnx]);
  assert.equal(r.status, 0, r.lines.join('\n'));
  baselineMiB = lorkdMeasured(['predict', '--model', expert, '--input', SMALL, '--quiet']).maxRssMiB;
});

/** Time and peak memory bounds of one run; logs them. */
function bounded(r: Measured, what: string, seconds = 30, mib = 150): void {
  console.log(`# ${what}: exit ${r.status} in ${r.seconds.toFixed(1)} s, peak RSS ${r.maxRssMiB.toFixed(0)} MiB (baseline ${baselineMiB.toFixed(0)} MiB)`);
  assert.ok(r.seconds < seconds, `${what}: took ${r.seconds} s`);
  if (HAVE_TIME) assert.ok(r.maxRssMiB < baselineMiB + mib, `${what}: peak RSS ${r.maxRssMiB.toFixed(0)} MiB, baseline ${baselineMiB.toFixed(0)} MiB`);
}

test('a legal 1 x 16,777,216 PNG (at LORKD_MAX_IMAGE_PIXELS): predicted at a bounded memory (was: heap out of memory)', () => {
  const file = path.join(dir, 'tall.png');
  writeFileSync(file, tallPng(2 ** 24));
  const r = lorkdMeasured(['predict', '--model', expert, '--input', file, '--quiet', '--json'], { LORKD_MAX_IMAGE_PIXELS: String(2 ** 24) });
  assert.equal(r.status, 0, r.lines.join('\n'));
  assert.equal((JSON.parse(r.stdout) as { predictions: unknown[] }).predictions.length, 1);
  // Inflated scanlines (64 MiB) and RGB planes (48 MiB); pngjs needed ~1.8 GB of heap here.
  bounded(r, 'tall PNG', 60, 250);
});

test('a FIFO given to any command that reads a file: one line at once, nothing hangs', () => {
  const site = path.join(dir, 'site');
  const fifoExperts = path.join(dir, 'fifo-experts');
  mkdirSync(fifoExperts);
  execFileSync('mkfifo', [path.join(fifoExperts, 'x.onnx')]);
  const cases: [string[], RegExp][] = [
    [['predict', '--model', fifo, '--input', SMALL], /fifo: cannot read file \(a FIFO, not a regular file\)/],
    [['export', '--model', fifo, '--format', 'onnx', '--out', path.join(dir, 'x.onnx')], /fifo: cannot read file \(a FIFO, not a regular file\)/],
    [['decompose', '--foundation', fifo, '--quiet', '--out', path.join(dir, 'd1')], /fifo: cannot read file \(a FIFO, not a regular file\)/],
    [['foundation', '--tasks', fifo, '--quiet', '--out', path.join(dir, 'f1')], /fifo: cannot read file \(a FIFO, not a regular file\)/],
    [['app', '--build', fifoExperts, '--out', site], /x\.onnx|no \.onnx|no experts/i],
  ];
  for (const [args, re] of cases) {
    const r = lorkdMeasured(args, {}, 60_000);
    expectOneLine(r, re);
    bounded(r, `FIFO: ${args[0]}`, 20);
  }
  // As an --input, it is a bad input: reported, skipped, exit 1.
  const p = lorkdMeasured(['predict', '--model', expert, '--input', fifo, '--quiet'], {}, 60_000);
  assert.equal(p.status, 1);
  assert.deepEqual(p.lines, [`lorkd: ${fifo}: cannot read image (a FIFO, not a regular file)`, 'lorkd: 0 images predicted, 1 input failed']);
  bounded(p, 'FIFO: predict --input', 20);
});

test('/dev/zero as --input: refused before any read (was: 6 GB after 16 s and growing)', () => {
  const r = lorkdMeasured(['predict', '--model', expert, '--input', '/dev/zero', '--quiet'], {}, 60_000);
  assert.equal(r.status, 1);
  assert.deepEqual(r.lines, ['lorkd: /dev/zero: cannot read image (a character device, not a regular file)', 'lorkd: 0 images predicted, 1 input failed']);
  bounded(r, '/dev/zero', 20);
});

test('values read from files are bounded like options: expert input_size, checkpoint rank, npz image size', () => {
  const { tensors, metadata } = loadSafetensors(expert);
  const huge = path.join(dir, 'huge.safetensors');
  saveSafetensors(huge, tensors, { ...metadata, input_size: '4096' });
  for (const t of tensors.values()) t.dispose();
  let r = lorkdMeasured(['predict', '--model', huge, '--input', SMALL]);
  expectOneLine(r, /huge\.safetensors: inconsistent expert metadata: input_size 4096 is over the limit \(limit 1024 input side in pixels; set LORKD_MAX_INPUT to change it\)/);
  bounded(r, 'input_size 4096');
  r = lorkdMeasured(['export', '--decomposition', checkpoint, '--all', '--out', path.join(dir, 'exp')], { LORKD_MAX_RANK: '2' });
  expectOneLine(r, /dm\.safetensors: bad lorkd config metadata \("rank" 4 is over the limit \(limit 2 expert rank; set LORKD_MAX_RANK/);
  bounded(r, 'rank over the limit');
  const npz = path.join(dir, 'task.npz');
  writeTaskNpz(npz, { classes: 2, sizes: { train: 8, val: 4, test: 4 }, seed: 2 });
  r = lorkdMeasured(['foundation', '--tasks', npz, '--quiet', '--out', path.join(dir, 'f2')], { LORKD_MAX_IMAGE_PIXELS: '100' });
  expectOneLine(r, /task\.npz.*train_images holds 28x28 images, over the limit \(limit 100 pixels per image; set LORKD_MAX_IMAGE_PIXELS/);
  bounded(r, 'npz image size');
});

type Model = { graph: { node: Record<string, unknown>[]; output: Record<string, unknown>[]; input: Record<string, unknown>[]; initializer: Record<string, unknown>[] } };

/** The exported expert with `edit` applied to its decoded ModelProto. */
function onnxVariant(name: string, edit: (m: Model) => void): string {
  const m = decodeModel(readFileSync(onnx)) as unknown as Model;
  edit(m);
  const file = path.join(dir, name);
  writeFileSync(file, encodeModel(m as unknown as Record<string, unknown>));
  return file;
}

/** ConstantOfShape of `dims` (float), named `out`, appended to the graph. */
function constantOfShape(m: Model, out: string, dims: number[]): void {
  const raw = Buffer.alloc(8 * dims.length);
  dims.forEach((d, i) => raw.writeBigInt64LE(BigInt(d), 8 * i));
  m.graph.initializer.push({ name: `${out}.shape`, data_type: 7, dims: [dims.length], raw_data: raw });
  m.graph.node.push({ op_type: 'ConstantOfShape', input: [`${out}.shape`], output: [out], name: out });
}

test('ONNX graphs: huge stated tensors refused before onnxruntime; onnxruntime errors are one line, its log quiet', () => {
  const extra = onnxVariant('extra.onnx', (m) => {
    constantOfShape(m, 'big', [40000, 40000]);
    m.graph.output.push({ name: 'big', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 40000 }, { dim_value: 40000 }] } } } });
  });
  let r = lorkdMeasured(['predict', '--model', extra, '--input', SMALL]);
  expectOneLine(r, /extra\.onnx: unexpected graph output "big" \(a lorkd expert has logits and cam\)/);
  bounded(r, 'ONNX extra output');
  for (const [name, dims] of [['hidden', [40000, 40000]], ['tera', [1_000_000, 1_000_000]]] as const) {
    const file = onnxVariant(`${name}.onnx`, (m) => constantOfShape(m, name, [...dims]));
    r = lorkdMeasured(['predict', '--model', file, '--input', SMALL]);
    expectOneLine(r, new RegExp(`${name}\\.onnx: ConstantOfShape "${name}" has shape \\[${dims.join(', ')}\\] \\(\\d+ bytes\\), over the limit \\(limit 1\\.00 GiB per tensor a model graph states; set LORKD_MAX_TENSOR_BYTES`));
    bounded(r, `ONNX ConstantOfShape ${dims.join('x')}`);
  }
  // A graph onnxruntime accepts but cannot run on lorkd's input (its input claims another size).
  const wrong = onnxVariant('wrong-input.onnx', (m) => {
    const dims = (m.graph.input[0] as { type: { tensor_type: { shape: { dim: Record<string, unknown>[] } } } }).type.tensor_type.shape.dim;
    dims[2] = { dim_value: 99 };
    dims[3] = { dim_value: 99 };
  });
  r = lorkdMeasured(['predict', '--model', wrong, '--input', SMALL]);
  expectOneLine(r, /wrong-input\.onnx: onnxruntime failed to run it \(/);
  assert.ok(!/\x1b\[/.test(r.lines[0]!), 'no ANSI colours');
  bounded(r, 'ONNX run error');
});

test('a deflated DICOM that inflates to 64 MiB past its pixels: inflated only up to its first frame', () => {
  const src = readFileSync(path.join(REPO, 'test', 'fixtures', 'dicom', 'image_dfl.dcm'));
  // The deflated data set starts after the group 0002 meta header.
  const metaEnd = 132 + 12 + src.readUInt32LE(132 + 8);
  const inflated = inflateRawSync(src.subarray(metaEnd));
  const bomb = Buffer.concat([src.subarray(0, metaEnd), deflateRawSync(Buffer.concat([inflated, Buffer.alloc(64 * 2 ** 20)]), { level: 9 })]);
  assert.ok(bomb.length < 400_000, `${bomb.length} bytes`);
  const file = path.join(dir, 'bomb.dcm');
  writeFileSync(file, bomb);
  const plain = lorkdMeasured(['predict', '--model', expert, '--input', path.join(REPO, 'test', 'fixtures', 'dicom', 'image_dfl.dcm'), '--json', '--quiet']);
  const r = lorkdMeasured(['predict', '--model', expert, '--input', file, '--json', '--quiet']);
  assert.equal(r.status, 0, r.lines.join('\n'));
  const probs = (m: Measured) => (JSON.parse(m.stdout) as { predictions: { probs: unknown }[] }).predictions[0]!.probs;
  assert.deepEqual(probs(r), probs(plain), 'the same image as the file without the bomb');
  bounded(r, 'DICOM bomb', 30, 60);
});

test('compare re-run into the same --out with other settings: refused in one line naming them', () => {
  const a = path.join(dir, 'ta.npz');
  const b = path.join(dir, 'tb.npz');
  writeTaskNpz(a, { classes: 2, sizes: { train: 12, val: 6, test: 6 }, seed: 5 });
  writeTaskNpz(b, { classes: 3, sizes: { train: 12, val: 6, test: 6 }, seed: 6 });
  const out = path.join(dir, 'cmp');
  const args = (extra: string[]) => ['compare', '--tasks', `${a},${b}`, '--methods', 'mtl', '--seeds', '0', '--batch', '8', '--quiet', '--out', out, ...extra];
  const first = lorkdMeasured(args(['--epochs', '1', '--input', '16']), {}, 300_000);
  assert.equal(first.status, 0, first.lines.join('\n'));
  const before = readFileSync(path.join(out, 'compare.json'), 'utf8');
  for (const [extra, re] of [
    [['--epochs', '2', '--input', '16'], /cmp\/runs\/mtl-s0 holds a run made with other settings \(epochs 1 there, 2 here\): it is not reused/],
    [['--epochs', '1', '--input', '32'], /\(input 16 there, 32 here\)/],
  ] as const) {
    const r = lorkdMeasured(args([...extra]), {}, 300_000);
    expectOneLine(r, re);
    bounded(r, `compare ${extra.join(' ')}`, 60, 300);
  }
  assert.equal(readFileSync(path.join(out, 'compare.json'), 'utf8'), before, 'compare.json is not rewritten');
  // The same settings read the finished run back.
  const again = lorkdMeasured(args(['--epochs', '1', '--input', '16']), {}, 300_000);
  assert.equal(again.status, 0, again.lines.join('\n'));
});

test('a failed launch prints its cause once, without libtorch warnings', { skip: distAvailable() ? false : 'no c10d in this build' }, () => {
  // Rank 0 refuses the run directory (it holds a run); rank 1 then loses its peer.
  const out = path.join(dir, 'launch');
  mkdirSync(out);
  writeFileSync(path.join(out, 'decomposition.safetensors'), 'x');
  const port = 29600 + (process.pid % 300);
  const r = lorkdMeasured(['launch', '--nproc', '2', '--master-port', String(port), '--timeout', '20', 'decompose', '--tasks', 'breastmnist', '--kd', 'none', '--epochs', '1', '--quiet', '--out', out], {}, 120_000);
  expectOneLine(r, /run directory .*launch already holds a run \(decomposition\.safetensors\)/);
  bounded(r, 'failed launch', 60, 600);
});
