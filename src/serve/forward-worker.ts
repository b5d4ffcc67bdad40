// The forward worker of lorkd serve (forward-host.ts): a worker thread with its own libtorch
// handles that runs every forward pass, so the service's event loop parses HTTP and hands
// images to the decode pool while a pass runs. It holds a twin of each served model (mirror.ts)
// and runs the same code as an in-thread forward (forward.ts: the inference plan, inference
// mode, autocast). Messages are handled one at a time, in the order the service posted them.
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { type Tensor, takeHandedOff, dropHandedOff, setNumThreads } from '../tensor/index.js';
import { TorchError, UserError } from '../tensor/errors.js';
import type { Module } from '../nn/module.js';
import type { DecompositionModel } from '../lorkd/decomposition.js';
import type { ImageClassifier } from '../models/classifier.js';
import { eksProbs, plainProbs, forgetPlan } from './forward.js';
import { buildMirror } from './mirror.js';
import type { ToWorker, FromWorker } from './forward-host.js';

const port = parentPort!;
const { threads, gate } = workerData as { threads: number; gate: Int32Array };
setNumThreads(threads);
// A twin by key, or the one-line reason it could not be built.
const twins = new Map<number, Module | string>();
const post = (m: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

function drop(key: number): void {
  const t = twins.get(key);
  twins.delete(key);
  if (t && typeof t !== 'string') {
    forgetPlan(t);
    t.dispose();
  }
}

function run(m: Extract<ToWorker, { type: 'run' }>): void {
  // The host's test gate: count the pass, then wait while it is held.
  Atomics.add(gate, 1, 1);
  while (Atomics.load(gate, 0) === 1) Atomics.wait(gate, 0, 1);
  const inputs: Tensor[] = [];
  let reply: FromWorker;
  let transfer: ArrayBuffer[] = [];
  try {
    for (const id of m.inputs) inputs.push(takeHandedOff(id));
    const twin = twins.get(m.key);
    if (twin === undefined || typeof twin === 'string') throw new Error(`serve: no model to run (${twin ?? 'not handed to the forward worker'})`);
    const t0 = performance.now();
    const probs = m.tasks ? eksProbs(twin as DecompositionModel, inputs, m.tasks, m.precision) : plainProbs(twin as ImageClassifier, inputs, m.precision);
    reply = { type: 'done', id: m.id, probs, ms: performance.now() - t0 };
    transfer = probs.map((p) => p.buffer as ArrayBuffer);
  } catch (e) {
    const kind = e instanceof UserError ? 'user' : e instanceof TorchError ? 'torch' : 'other';
    reply = { type: 'failed', id: m.id, kind, message: String((e as Error)?.message ?? e) };
  } finally {
    for (const id of m.inputs.slice(inputs.length)) dropHandedOff(id);
    for (const x of inputs) x.dispose();
  }
  // Answered only once the pass's inputs are freed: the host sees this thread's handles settled.
  post(reply, transfer);
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'mirror':
      drop(m.key);
      try {
        twins.set(m.key, buildMirror(m));
      } catch (e) {
        twins.set(m.key, String((e as Error)?.message ?? e).split('\n')[0]!);
      }
      break;
    case 'forget':
      drop(m.key);
      break;
    case 'run':
      run(m);
      break;
    case 'close':
      for (const k of [...twins.keys()]) drop(k);
      post({ type: 'closed' });
      port.close();
      break;
  }
});
