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

test('a miss of a large class first frees idle large buffers of other classes, least recently used first', () => {
  const { raw, log } = fakeRaw();
  const a = new CachingAllocator(raw, 1 << 30, 1000, 0); // coldAfter 0: every idle large class may go
  const small = a.alloc(300, false); // class 320: below largeBytes, never given back on a miss
  const l1 = a.alloc(1024, false), l2 = a.alloc(1024, false), l3 = a.alloc(1536, false);
  a.free(small);
  a.free(l1);
  a.free(l2);
  a.free(l3); // idle: 320, 2 x 1024, 1536 (most recent)
  assert.equal(log.allocs, 4);
  // a hit gives nothing back
  assert.equal(a.alloc(1536, false), l3);
  assert.equal(log.frees, 0);
  // a miss of 2048 bytes frees the least recently used large class (1024) until 2048 bytes are gone
  const l4 = a.alloc(2048, false);
  assert.equal(log.allocs, 5);
  assert.equal(log.frees, 2, 'both idle 1024-byte buffers were given back');
  assert.equal(a.cached, 320, 'the small buffer stays cached');
  a.free(l3);
  a.free(l4);
  // a miss frees only as much as it makes: 1280 bytes -> the 1536 class (older) goes, the 2048 one stays
  a.alloc(1280, false);
  assert.equal(log.frees, 3);
  assert.equal(a.cached, 320 + 2048);
  // with nothing idle and large, a miss frees nothing
  a.alloc(2048, false);
  a.alloc(4096, false);
  assert.equal(log.frees, 3);
  assert.equal(a.alloc(300, false), small, 'small classes are reused as before');
});

test('a small miss never frees large buffers', () => {
  const { raw, log } = fakeRaw();
  const a = new CachingAllocator(raw, 1 << 30, 1000, 0);
  a.free(a.alloc(4096, false));
  a.alloc(100, false);
  a.alloc(600, false);
  assert.equal(log.frees, 0);
  assert.equal(a.cached, 4096);
});

test('a miss frees only cold classes: one used within the last coldAfter large allocations stays', () => {
  const { raw, log } = fakeRaw();
  const a = new CachingAllocator(raw, 1 << 30, 1000, 3);
  const hot = a.alloc(1024, false), cold = a.alloc(4096, false); // ticks 1, 2
  a.free(cold);
  a.alloc(1024, false); // tick 3: a second 1024 buffer (miss; the 4096 class was used 1 allocation ago: hot)
  assert.equal(log.frees, 0, 'a class used just before is hot');
  a.free(hot);
  a.alloc(2048, false); // tick 4: 4096 last used at tick 2 (hot), 1024 at tick 3 (hot)
  assert.equal(log.frees, 0);
  a.alloc(8192, false); // tick 5: 4096 idle since tick 2 -> cold (5 - 2 >= 3), 1024 since tick 3 (5 - 3 < 3)
  assert.equal(log.frees, 1, 'the cold 4096 buffer was given back');
  assert.equal(a.cached, 1024, 'the hot 1024 buffer stays');
  // a layer loop: two sizes that alternate never free each other (no ping-pong)
  const { raw: raw2, log: log2 } = fakeRaw();
  const b = new CachingAllocator(raw2, 1 << 30, 1000, 16);
  const live: ArrayBuffer[] = [];
  for (let layer = 0; layer < 30; layer++) {
    live.push(b.alloc(1500, false)); // kept (a checkpoint's input): a miss every layer
    b.free(b.alloc(3000, false)); // a temporary: a hit from the second layer on
  }
  assert.equal(log2.frees, 0, 'no buffer of the loop was given back');
  assert.equal(log2.allocs, 31);
});
