// The caching allocator: reuse by size class, a bounded cache, least-recently-used classes evicted first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CachingAllocator, sizeClass } from '../../src/engine/backend/native/cache.js';

function fakeRaw() {
  const log = { allocs: 0, frees: 0 };
  return {
    log,
    raw: {
      alloc: (bytes: number) => (log.allocs++, new ArrayBuffer(bytes)),
      free: () => void log.frees++,
    },
  };
}

test('size classes round up by at most a quarter', () => {
  for (const n of [1, 255, 257, 1000, 4096, 5000, 1 << 20, 3e6 + 7]) {
    const c = sizeClass(n);
    assert.ok(c >= n && (n <= 256 || c <= n * 1.25 + 1), `${n} -> ${c}`);
  }
});

test('released buffers are reused; over the limit the least recently used class goes first', () => {
  const { raw, log } = fakeRaw();
  const a = new CachingAllocator(raw, 3000);
  const b1 = a.alloc(1000, false);
  a.free(b1);
  assert.equal(a.alloc(1000, false), b1, 'same class reused');
  assert.equal(log.allocs, 1);
  const small = a.alloc(300, false); // class 320
  a.free(b1); // cached: 1024
  a.free(small); // cached: 1024 + 320
  const big = a.alloc(2000, false); // class 2048, fresh
  a.free(big); // 1024 + 320 + 2048 > 3000: evict the oldest class (1024) first
  assert.equal(log.frees, 1);
  assert.equal(a.cached, 320 + 2048);
  assert.equal(a.alloc(2000, true), big, 'the newest class stayed');
  a.emptyCache();
  assert.equal(a.cached, 0);
});
