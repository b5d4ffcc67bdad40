// lorkd pack streams: its peak memory does not grow with the number of images. The same CSV task
// with 3x the rows (one 256x256 colour PNG listed again and again, each row packed as an image)
// must not raise the child's peak RSS by more than a fraction of what holding the pixels would.
// Both runs are past the point where V8 collects the garbage of finished images (external memory
// is collected in steps of tens of MB), so the comparison is of the plateau, not of the slack.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { HAVE_TIME, lorkdMeasured } from './helpers/hostile.js';

test('pack: peak RSS is flat in the number of images (600 vs 1800 rows)', { skip: HAVE_TIME ? false : '/usr/bin/time is missing' }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lorkd-pack-mem-'));
  const side = 256;
  const px = Buffer.alloc(side * side * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 7 + (i >> 8)) & 255;
  await sharp(px, { raw: { width: side, height: side, channels: 3 } }).png().toFile(path.join(dir, 'x.png'));
  const csv = (n: number): string => {
    const f = path.join(dir, `t${n}.csv`);
    writeFileSync(f, 'path,label\n' + Array.from({ length: n }, (_, i) => `x.png,${['a', 'b'][i % 2]}`).join('\n') + '\n');
    return f;
  };
  const run = (n: number) => {
    const r = lorkdMeasured(['pack', csv(n), '--out', path.join(dir, `p${n}`), '--size', String(side), '--threads', '2', '--shard-mib', '4', '--json']);
    assert.equal(r.status, 0, r.lines.join('\n'));
    assert.equal(JSON.parse(r.stdout).images, n);
    return r.maxRssMiB;
  };
  const small = run(600);
  const large = run(1800);
  const pixelsMiB = (1200 * side * side * 3) / 2 ** 20; // what holding the extra images would cost: 225 MiB
  assert.ok(large - small < 50, `peak RSS ${small.toFixed(0)} MiB for 600 images, ${large.toFixed(0)} MiB for 1800 (holding the extra pixels would add ${pixelsMiB.toFixed(0)} MiB)`);
});
