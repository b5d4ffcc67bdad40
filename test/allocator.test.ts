// lorkd's caching CPU allocator (native/src/allocator.cc): freed blocks from 4 KiB on are kept and
// reused (memory().cachedBytes), smaller ones go back to the system allocator, emptyCache() frees
// the cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { zeros, memory, emptyCache } from '../src/tensor/index.js';
import { N } from '../src/tensor/ops-native.js';

test('a freed 16 KiB block is cached and reused; a 1 KiB one is not; emptyCache frees the cache', (t) => {
  if (!(N.cachingAllocator() as { enabled: boolean }).enabled) return t.skip('LORKD_CACHING_ALLOCATOR=0');
  emptyCache();
  assert.equal(memory().cachedBytes, 0);
  const big = zeros([4096]); // 16 KiB of float32
  big.dispose();
  const cached = memory().cachedBytes;
  assert.ok(cached >= 16384, `16 KiB block cached (${cached} bytes)`);
  const again = zeros([4096]);
  assert.equal(memory().cachedBytes, 0, 'the same size class is taken back from the cache');
  again.dispose();
  const small = zeros([256]); // 1 KiB
  small.dispose();
  assert.equal(memory().cachedBytes, cached, 'a 1 KiB block goes back to the system allocator');
  emptyCache();
  assert.equal(memory().cachedBytes, 0);
});
