// Child process of test/worker-terminate.test.ts: starts `rounds` worker threads one after
// another, each loading a native addon and calling a function of it that throws, in a loop, and
// terminates each a few milliseconds in. Exits 0 and prints "survived N" unless the process
// aborts (an exception that cannot reach a terminating worker's JavaScript must be swallowed,
// not end the process: NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS in native/binding.gyp).
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';

const [addon, kind, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 50);
const call =
  kind === 'jpeg'
    ? 'addon.decodeCropInto(new Uint8Array(200).fill(7), 0, 0, 64, 64, 32, false, new Uint8Array(3 * 32 * 32), 0)'
    : 'addon.maxPoolInfer(1, 2)';
const code = `
const { parentPort, workerData } = require('node:worker_threads');
const addon = require(workerData.addon);
parentPort.postMessage('ready');
for (;;) { try { ${call}; } catch {} }
`;
for (let i = 0; i < rounds; i++) {
  const w = new Worker(code, { eval: true, workerData: { addon } });
  await once(w, 'message');
  await new Promise((r) => setTimeout(r, (i % 4) * 0.7));
  await w.terminate();
}
console.log(`survived ${rounds}`);
