// lorkd serve's forward worker (src/serve/forward-host.ts): passes run off the event loop on twins
// of the served models that share their storage. Checked here: the worker's probabilities equal
// the in-thread forward's (EKS and plain, and after a task joins the running model); while a pass
// is held in the worker (its test gate), the event loop answers /healthz and /metrics; nothing leaks (tensor
// handles of both threads, parked hand-offs); a bad input fails its pass, not the process.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { manualSeed, memory, randn, handedOffCount, noGrad, UserError, type Tensor } from '../src/tensor/index.js';
import { ShuffleNetV2 } from '../src/models/shufflenetv2.js';
import { DecompositionModel, saveDecomposition } from '../src/lorkd/index.js';
import { createModel } from '../src/models/index.js';
import { ForwardHost } from '../src/serve/forward-host.js';
import { eksProbs, plainProbs, forgetPlan } from '../src/serve/forward.js';
import { Service, startServer, decompositionDepartments } from '../src/serve/index.js';
import { randomizeDecomposition, randomizeBatchNorms } from './helpers/random-decomposition.js';
import { writeImages, post, type TestImage } from './serve-fixtures.js';

const TASKS = [
  { name: 'a', classNames: ['x', 'y'] },
  { name: 'b', classNames: ['x', 'y', 'z'] },
  { name: 'c', classNames: ['p', 'q', 'r', 's'] },
];

const inputsOf = (n: number, side: number): Tensor[] => Array.from({ length: n }, () => randn([1, 3, side, side]));
const maxDiff = (a: Float32Array[], b: Float32Array[]): number => Math.max(...a.map((r, i) => Math.max(...r.map((v, k) => Math.abs(v - b[i]![k]!)))));
const dispose = (ts: Tensor[]) => ts.forEach((t) => t.dispose());

describe('serve: the forward worker', () => {
  test('EKS and plain passes in the worker equal the in-thread forward; a joined task runs on a new twin; nothing leaks', async () => {
    manualSeed(11);
    const live = memory().liveTensors;
    const dm = randomizeDecomposition(new DecompositionModel({ model: 'shufflenet_v2_x0_5', tasks: TASKS, rank: 4, strategy: 'fused' }), { headStd: 0.5 }).eval();
    const plain = createModel('resnet18', { numClasses: 5 });
    randomizeBatchNorms(plain);
    plain.eval();
    const host = new ForwardHost();
    const x = inputsOf(7, 32);
    const tasks = [0, 0, 1, 1, 1, 2, 2];
    try {
      const want = eksProbs(dm, x, tasks);
      const got = await host.run(dm, x, tasks, 'fp32');
      assert.equal(got.probs.length, 7);
      assert.ok(got.ms > 0);
      assert.ok(maxDiff(got.probs, want) < 1e-6, `eks: ${maxDiff(got.probs, want)}`);
      assert.ok(Math.abs(got.probs[5]!.reduce((a, b) => a + b, 0) - 1) < 1e-5 && got.probs[5]!.length === 4);

      const wantPlain = plainProbs(plain, x.slice(0, 3));
      const gotPlain = await host.run(plain, x.slice(0, 3), undefined, 'fp32');
      assert.ok(maxDiff(gotPlain.probs, wantPlain) < 1e-6, `plain: ${maxDiff(gotPlain.probs, wantPlain)}`);

      // Warm: every later pass leaves the handles of both threads as they were (the worker frees a
      // pass's inputs before it answers).
      const warm = memory().liveTensors;
      for (let i = 0; i < 20; i++) {
        await Promise.all([host.run(dm, x, tasks, 'fp32'), host.run(plain, x.slice(0, 2), undefined, 'fp32')]);
      }
      // (Handles the garbage collector frees meanwhile may only lower the count.)
      assert.ok(memory().liveTensors <= warm, `passes leaked tensor handles: ${memory().liveTensors} > ${warm}`);
      assert.equal(handedOffCount(), 0, 'hand-offs left parked');

      // A task joins the running model (serve/join.ts does this): the next pass sees it.
      const d = dm.addTask({ name: 'd', classNames: ['u', 'v'], rank: 4 });
      noGrad(() => {
        for (const [, c] of dm.expertConvs()) c.factors(d).b.normal_(0, 0.05);
        dm.head(d).weight.normal_(0, 0.5);
      });
      forgetPlan(dm);
      const tasks2 = [0, 1, 2, 3, 3, 3, 3];
      const want2 = eksProbs(dm, x, tasks2);
      const got2 = await host.run(dm, x, tasks2, 'fp32');
      assert.ok(maxDiff(got2.probs, want2) < 1e-6, `joined: ${maxDiff(got2.probs, want2)}`);
      assert.equal(got2.probs[6]!.length, 2);
    } finally {
      await host.close();
      forgetPlan(dm);
      forgetPlan(plain);
      dispose(x);
      dm.dispose();
      plain.dispose();
    }
    assert.equal(handedOffCount(), 0);
    assert.equal(memory().liveTensors, live, 'twins, plans, models and inputs all freed');
  });

  test('a bad input fails its pass with an error; the worker goes on', async () => {
    manualSeed(12);
    const dm = randomizeDecomposition(new DecompositionModel({ model: 'shufflenet_v2_x0_5', tasks: TASKS, rank: 2, strategy: 'fused' })).eval();
    const host = new ForwardHost();
    const bad = [randn([1, 2, 32, 32])];
    const good = inputsOf(2, 32);
    try {
      await assert.rejects(host.run(dm, bad, [0], 'fp32'), (e: Error) => e instanceof Error && e.message.length > 0);
      await assert.rejects(host.run(dm, good, [0, 5], 'fp32'));
      const ok = await host.run(dm, good, [0, 2], 'fp32');
      assert.equal(ok.probs.length, 2);
      // A model the worker cannot rebuild (not made by createModel): refused in one line, nothing parked.
      const stray = new ShuffleNetV2('x0_5', { numClasses: 3 });
      await assert.rejects(host.run(stray, good, undefined, 'fp32'), (e: Error) => e instanceof UserError && /createModel/.test(e.message));
      stray.dispose();
      assert.equal(handedOffCount(), 0);
    } finally {
      await host.close();
      forgetPlan(dm);
      dispose([...bad, ...good]);
      dm.dispose();
    }
    await assert.rejects(host.run(dm, good, [0], 'fp32'), /closed/);
  });
});

describe('serve: the event loop while a forward runs', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-serve-forward-'));
  let checkpoint: string;
  let images: TestImage[];
  before(() => {
    manualSeed(13);
    const dm = randomizeDecomposition(new DecompositionModel({ model: 'shufflenet_v2_x1_0', tasks: TASKS, rank: 8, strategy: 'fused' }));
    checkpoint = path.join(dir, 'dm.safetensors');
    saveDecomposition(checkpoint, dm, { input_size: '64', mean: '[0.5,0.5,0.5]', std: '[0.5,0.5,0.5]' });
    dm.dispose();
    images = writeImages(path.join(dir, 'img'), 8, TASKS);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('/healthz and /metrics answer while a forward pass is held in the worker', async () => {
    const service = new Service({ mode: 'eks', maxBatch: 24, maxWaitMs: 30, maxQueue: 100 }, decompositionDepartments(checkpoint, 'eks'));
    const srv = await startServer(service, { host: '127.0.0.1', port: 0, maxBodyBytes: 1 << 20 });
    try {
      await Promise.all(images.slice(0, 3).map((im) => post(srv.url, im))); // the twin and its plan exist
      const reached = service.forward.passesAtGate;
      // Hold the next pass at the worker's gate: were the forward on the event loop, nothing below
      // could answer until it finished (it never would: the gate opens only after the checks).
      service.forward.hold();
      let settled = false;
      const pending = Promise.all(images.map((im) => post(srv.url, im))).finally(() => (settled = true));
      while (service.forward.passesAtGate === reached) await new Promise((res) => setTimeout(res, 2));
      for (const route of ['/healthz', '/metrics']) {
        const r = await fetch(`${srv.url}${route}`);
        assert.equal(r.status, 200, route);
        await r.text();
      }
      assert.equal(settled, false, 'the held pass is still in flight while the event loop answers');
      service.forward.release();
      for (const a of await pending) assert.equal(a.status, 200, JSON.stringify(a.body));
    } finally {
      service.forward.release();
      await srv.close();
    }
  });
});
