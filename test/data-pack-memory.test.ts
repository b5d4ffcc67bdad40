// Memory stays flat with the number of images streamed from a pack (the small-scale version of
// `lorkd bench data`'s RSS case): a training epoch over a pack of 20,000 images peaks within 25 MB of
// one over 2,000 (their pixels differ by 55 MB; held in memory, the large one would add that and
// more), each in its own child process.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSyntheticPack } from './helpers/synthetic-pack.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-pack-memory-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const HELPER = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bench', 'stream-epoch.js');

function peak(pack: string): { seen: number; maxRssMb: number } {
  const r = spawnSync(process.execPath, [HELPER, pack, '32', '64'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { seen: number; maxRssMb: number };
}

test('a training epoch from a pack of 20,000 images peaks within 25 MB of one from 2,000', { timeout: 180_000 }, async () => {
  const small = path.join(dir, 'small');
  const large = path.join(dir, 'large');
  await writeSyntheticPack(small, 2000, 32);
  await writeSyntheticPack(large, 20000, 32);
  const s = peak(small);
  const l = peak(large);
  assert.equal(s.seen, 2000);
  assert.equal(l.seen, 20000);
  assert.ok(l.maxRssMb - s.maxRssMb < 25, `peak RSS ${l.maxRssMb.toFixed(0)} MB (20,000 images) vs ${s.maxRssMb.toFixed(0)} MB (2,000)`);
});
