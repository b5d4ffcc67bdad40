// lorkd transfer onto a pack's task (experiments/transfer.ts, data/packed.ts): a raw pack of a
// MedMNIST-format npz gives the in-memory transfer's results exactly (k shots drawn from the pack's
// rows without reading them: image-folder.ts's selectRows keeps a packed split packed); a JPEG
// pack's rows arrive at the network's input; a pack of several tasks needs #TASK; the --transfer
// spec keeps a pack source's colon.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { UserError, memory, setNumThreads } from '../src/tensor/index.js';
import { resolveSource } from '../src/experiments/transfer-source.js';
import { loadDownstream, parseTransferSpec, runTransfer, TRANSFER_DEFAULTS, type TransferSpec } from '../src/experiments/transfer.js';
import { createProgress } from '../src/experiments/progress.js';
import { loadTasks } from '../src/data/medmnist.js';
import { packTasks } from '../src/data/pack-tasks.js';
import { fewShot } from '../src/data/image-folder.js';
import { writeTaskNpz } from './helpers/pipeline.js';

setNumThreads(1);
const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-transfer-pack-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const quiet = createProgress({ quiet: true });
const isOneLine = (re: RegExp) => (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n');

const A = path.join(dir, 'down.npz');
const B = path.join(dir, 'other.npz');
writeTaskNpz(A, { classes: 3, sizes: { train: 18, val: 3, test: 12 }, rgb: true, seed: 4 });
writeTaskNpz(B, { classes: 2, sizes: { train: 8, val: 2, test: 4 }, seed: 5 });

test('a raw pack of the downstream npz gives the in-memory transfer exactly (k shots, two seeds)', { timeout: 180_000 }, async () => {
  const before = memory().liveTensors;
  const pack = path.join(dir, 'raw');
  await packTasks(pack, loadTasks([A]), { storage: 'raw' });
  const src = resolveSource({ from: 'scratch', model: 'shufflenet_v2_x0_5', input: 28 });
  const spec: TransferSpec = { ...TRANSFER_DEFAULTS, data: A, shots: 4, epochs: 1, lr: 1e-3, batch: 8, seeds: [0, 1] };
  const mem = await runTransfer(src, spec, path.join(dir, 'out-mem'), { progress: quiet });
  const packed = await runTransfer(src, { ...spec, data: `pack:${pack}` }, path.join(dir, 'out-pack'), { progress: quiet });
  assert.equal(packed.data.name, mem.data.name);
  assert.equal(packed.data.train, 18);
  packed.runs.forEach((r, k) => {
    const m = mem.runs[k]!;
    assert.equal(r.n_train, 12, '4 shots x 3 classes');
    assert.equal(r.final_loss, m.final_loss, `seed ${r.seed}: the same batches, the same loss`);
    assert.equal(r.accuracy, m.accuracy);
    assert.equal(r.auc, m.auc);
  });
  assert.ok(memory().liveTensors <= before, 'no tensors leaked');
});

test("a JPEG pack's few-shot rows stay packed and arrive at the network's input; several tasks need #TASK", { timeout: 120_000 }, async () => {
  const pack = path.join(dir, 'jpeg');
  await packTasks(pack, loadTasks([A, B]), { storage: 'jpeg', quality: 95 });
  const spec = { ...TRANSFER_DEFAULTS, valSplit: 0.1, testSplit: 0.2, splitSeed: 0 };
  assert.throws(() => loadDownstream({ ...spec, data: `pack:${pack}` }), isOneLine(/holds 2 tasks \(down, other\); name one/));
  assert.throws(() => loadDownstream({ ...spec, data: `${pack}#nope` }), isOneLine(/no task 'nope'/));
  const d = loadDownstream({ ...spec, data: `pack:${pack}#down` }, 40);
  assert.equal(d.splits.train.height, 40);
  const k = fewShot(d, 2, 7);
  assert.equal(k.splits.train.n, 6);
  assert.equal(k.splits.train.pack?.rows?.length, 6, 'a row map into the pack, no pixels read');
  assert.equal(k.splits.train.images.length, 0);
  const src = resolveSource({ from: 'scratch', model: 'shufflenet_v2_x0_5', input: 40 });
  const r = await runTransfer(src, { ...TRANSFER_DEFAULTS, data: `${pack}#down`, shots: 2, epochs: 1, lr: 1e-3, batch: 4, seeds: [0] }, path.join(dir, 'out-jpeg'), { progress: quiet });
  assert.equal(r.runs[0]!.n_train, 6);
  assert.equal(r.runs[0]!.n_test, 12);
  assert.ok(Number.isFinite(r.runs[0]!.final_loss!));
});

test('--transfer SPEC keeps a pack source whole: pack:DIR#TASK:key=value', () => {
  const s = parseTransferSpec('pack:/data/packs/x#down:shots=5:epochs=3');
  assert.equal(s.data, 'pack:/data/packs/x#down');
  assert.equal(s.shots, 5);
  assert.equal(s.epochs, 3);
  assert.equal(parseTransferSpec('pack:/p').data, 'pack:/p');
});
