// peakRssMb (src/io/peak-rss.ts) reports a process's own peak, not one inherited from the parent
// that spawned it (getrusage's maxrss survives execve on Linux; bench data and the pack-memory
// test measure children of large parents).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { peakRssMb } from '../src/io/peak-rss.js';

const MODULE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'io', 'peak-rss.js');

test("a child spawned by a parent holding 400 MB reports its own peak RSS, far below the parent's", (t) => {
  if (!existsSync('/proc/self/status')) return t.skip('no /proc: maxRSS is all there is');
  const ballast = Buffer.alloc(400 * 1024 * 1024, 1); // touched: resident
  assert.ok(peakRssMb() >= 400, `the parent's own peak counts its ballast: ${peakRssMb()}`);
  const code = `import('${MODULE}').then((m) => console.log(JSON.stringify({ own: m.peakRssMb(), inherited: process.resourceUsage().maxRSS / 1024 })))`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const { own } = JSON.parse(r.stdout) as { own: number; inherited: number };
  assert.ok(own > 10 && own < 200, `child's own peak ${own.toFixed(0)} MB`);
  assert.equal(ballast[ballast.length - 1], 1);
});
