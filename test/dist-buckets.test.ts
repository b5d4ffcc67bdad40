// DDP's gradient buckets count bytes with each gradient's own element size (float64: 8 bytes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { zeros, tidy } from '../src/tensor/index.js';
import { bucketsBySize } from '../src/dist/ddp.js';

test('bucketsBySize closes a bucket at the byte cap, counting float64 as 8 bytes and float32 as 4', () => {
  tidy(() => {
    const f64 = [zeros([10], { dtype: 'float64' }), zeros([10], { dtype: 'float64' }), zeros([10], { dtype: 'float64' })];
    // 80 bytes each: a 100-byte cap closes after two tensors (160 >= 100), then one left over.
    assert.deepEqual(bucketsBySize(f64, 100).map((b) => b.length), [2, 1]);
    // the same shapes in float32 (40 bytes each): 120 >= 100 after three.
    const f32 = f64.map((t) => t.float());
    assert.deepEqual(bucketsBySize(f32, 100).map((b) => b.length), [3]);
    // every tensor appears once, in order
    const flat = bucketsBySize(f64, 100).flat();
    flat.forEach((t, i) => assert.equal(t, f64[i]));
    assert.deepEqual(bucketsBySize([], 100), []);
  });
});
