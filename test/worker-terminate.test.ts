// A worker thread terminated while it is inside a native call that throws (the loader's decode
// workers, serve's forward worker) must not abort the process: the error cannot reach the
// terminating worker's JavaScript, and node-addon-api then ends the process unless it is told to
// swallow it. Before the define in native/binding.gyp, 100 such terminations aborted the process
// (SIGABRT, "terminate called after throwing an instance of 'Napi::Error'") in 2 of 3 runs for
// each addon; it happened once in a full test run (data-jpeg-crop's corrupt-JPEG case).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const child = path.join(here, 'helpers/terminate-loop.js');

for (const [kind, file] of [
  ['native', 'lorkd_native.node'],
  ['jpeg', 'lorkd_jpeg.node'],
] as const) {
  const addon = path.join(root, 'native/build/Release', file);
  test(`${file}: 80 worker threads terminated inside a throwing native call leave the process running`, { skip: existsSync(addon) ? false : `${file} is not built`, timeout: 120_000 }, () => {
    const r = spawnSync(process.execPath, [child, addon, kind, '80'], { encoding: 'utf8' });
    assert.equal(r.signal, null, `the child was killed by ${r.signal}: ${r.stderr.trim().split('\n').slice(0, 2).join(' | ')}`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /survived 80/);
  });
}
