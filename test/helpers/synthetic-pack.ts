// A raw pack of n noisy colour images of one task (two classes), written image by image with the
// pack writer (nothing held in memory): for the memory tests.
import { PackWriter, type PackManifest } from '../../src/pack/index.js';
import { lcg } from './random.js';

export async function writeSyntheticPack(dir: string, n: number, size: number): Promise<PackManifest> {
  const w = PackWriter.open(dir, `synthetic:${n}:${size}`, [{ labelsPerImage: 1 }], 16 * 2 ** 20);
  const r = lcg(n);
  const splits = ['train', 'val', 'test'] as const;
  const per = 3 * size * size;
  for (let i = 0; i < n + 4; i++) {
    const bytes = new Uint8Array(per);
    for (let k = 0; k < per; k++) bytes[k] = (r() * 256) | 0;
    // n training images, then two each for val and test (a task needs every split).
    const split = i < n ? splits[0] : splits[1 + ((i - n) >> 1)]!;
    w.add(0, split, Int32Array.of(i % 2), [{ bytes, height: size, width: size, grey: false }], i + 1);
  }
  w.advance(n + 4);
  return w.finish({
    format: 'lorkd-pack', version: 1, storage: 'raw', size,
    resize: { method: 'bilinear', antialias: false, align_corners: false, fit: 'square' },
    seed: 0, split: { val: 0, test: 0 }, created: new Date().toISOString(),
    tasks: [{ name: 'noise', classNames: ['a', 'b'], task: 'binary-class', labelsPerImage: 1, source: 'synthetic' }],
  });
}
