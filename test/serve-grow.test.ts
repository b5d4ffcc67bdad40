// serve grows too: a hot add of a new task from a grown decomposition (its shared part
// bit-identical to the running model's) joins the running model's EKS pass: a later mixed batch of
// old and new departments runs in one forward (lorkd_forwards_total in /metrics), each answer
// equal to its task's fused expert of the grown file.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { noGrad, setNumThreads } from '../src/tensor/index.js';
import { readDecomposition, saveDecomposition } from '../src/lorkd/index.js';
import { Service, startServer, decompositionDepartments } from '../src/serve/index.js';
import { writeDecomposition, writeExperts, writeImages, references, maxDiff, post, TASKS, INPUT, MEAN, STD } from './serve-fixtures.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-serve-grow-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The EKS and plain forward counts of /metrics. */
async function forwards(url: string): Promise<{ eks: number; plain: number }> {
  const m = await (await fetch(`${url}/metrics`)).text();
  const n = (p: string) => Number(new RegExp(`^lorkd_forwards_total\\{path="${p}"\\} (\\d+)$`, 'm').exec(m)?.[1] ?? 0);
  return { eks: n('eks'), plain: n('plain') };
}

test('a task of a grown decomposition joins the running EKS pass; mixed old/new batches run in one forward', async () => {
  setNumThreads(1);
  const base = writeDecomposition(path.join(dir, 'base.safetensors'), 21, TASKS.slice(0, 2));
  // The grown file: the base plus a third task (what lorkd grow writes), its expert and head random.
  const grownFile = path.join(dir, 'grown.safetensors');
  const g = readDecomposition(base).model;
  const t = g.addTask({ ...TASKS[2]!, rank: 2 });
  noGrad(() => {
    for (const [, c] of g.expertConvs()) c.factors(t).b.normal_(0, 0.05);
    g.head(t).weight.normal_(0, 0.5);
  });
  saveDecomposition(grownFile, g, { input_size: String(INPUT), mean: JSON.stringify(MEAN), std: JSON.stringify(STD) });
  g.dispose();
  const images = writeImages(path.join(dir, 'img'), 1);
  const refs = references(writeExperts(grownFile, path.join(dir, 'experts')), images);

  const service = new Service({ mode: 'eks', maxQueue: 100, maxWaitMs: 5000, maxBatch: 3 }, decompositionDepartments(base, 'eks'));
  const srv = await startServer(service, { host: '127.0.0.1', port: 0, maxBodyBytes: 1 << 20 });
  try {
    const shared = service.departments.get('breast')!.eks!.shared;
    const add = await fetch(`${srv.url}/v1/admin/tasks/retina`, { method: 'PUT', body: JSON.stringify({ file: grownFile }), headers: { 'content-type': 'application/json' } });
    assert.equal(add.status, 201);
    const retina = service.departments.get('retina')!;
    assert.equal(retina.eks?.shared, shared, 'the new department is served by the running model');
    assert.equal(retina.eks?.index, 2);
    const before = await forwards(srv.url);
    const answers = await Promise.all(images.map((im) => post(srv.url, im)));
    const after = await forwards(srv.url);
    assert.deepEqual(after, { eks: before.eks + 1, plain: before.plain }, 'old and new departments in one EKS forward');
    answers.forEach((a, i) => {
      assert.equal(a.status, 200);
      assert.equal(a.body.servedBy, 'eks');
      assert.ok(maxDiff(a.body.probs, refs.get(images[i]!)!) <= 1e-4, `${images[i]!.task}: ${JSON.stringify(a.body.probs)}`);
    });
    // A file whose shared part differs is loaded as a model of its own, as before.
    const other = writeDecomposition(path.join(dir, 'other.safetensors'), 22);
    assert.equal((await fetch(`${srv.url}/v1/admin/tasks/retina-b`, { method: 'PUT', body: JSON.stringify({ file: other, task: 'retina' }), headers: { 'content-type': 'application/json' } })).status, 201);
    assert.notEqual(service.departments.get('retina-b')!.eks!.shared, shared);
  } finally {
    await srv.close();
  }
});
