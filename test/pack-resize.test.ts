// The worker-thread resize (no libtorch) gives the bytes of the torch resize that in-memory image
// folders use, so a raw pack holds the pixels the in-memory task holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resizeImage } from '../src/data/images.js';
import { resizeBilinear } from '../src/data/image-resize.js';
import { Rng } from '../src/data/rng.js';

test('resizeBilinear equals resizeImage (torch F.interpolate bilinear) byte for byte', () => {
  const rng = Rng.from(0, 'resize-test');
  const cases: [number, number, number, number][] = [[28, 28, 64, 64], [64, 64, 28, 28], [100, 37, 224, 224], [513, 300, 64, 64], [7, 9, 5, 13], [224, 260, 224, 112], [1, 5, 3, 3], [600, 480, 224, 224], [3, 3, 1, 1]];
  for (const [H, W, h, w] of cases) {
    const data = new Uint8Array(3 * H * W);
    for (let i = 0; i < data.length; i++) data[i] = rng.nextU32() & 255;
    const img = { height: H, width: W, data, grey: false };
    const want = resizeImage(img, h, w).data;
    const got = resizeBilinear(img, h, w).data;
    let diff = 0;
    for (let i = 0; i < want.length; i++) if (want[i] !== got[i]) diff++;
    assert.equal(diff, 0, `${H}x${W} -> ${h}x${w}: ${diff} of ${want.length} bytes differ`);
  }
});
