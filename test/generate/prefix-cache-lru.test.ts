// PrefixCache on its own, with stand-in caches: the longest match, the cut at the first differing picture and at
// the model's resume point, at least one position left to run, least-recently-used eviction within the byte
// budget, a newer prompt replacing the ones it extends, and every dropped cache disposed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PrefixCache, type PrefixKey } from '../../src/generate/prefix-cache.js';
import type { KVCache } from '../../src/generate/types.js';

function fakeCache(bytes: number, log: string[], name: string): KVCache {
  return { length: 0, bytes, keepRows: () => undefined, dispose: () => log.push(name) };
}
const key = (ids: number[], images: string[] = [], imageStarts: number[] = []): PrefixKey => ({ ids, images, imageStarts });
const whole = (p: number) => p;

describe('PrefixCache', () => {
  it('finds the longest shared prefix, leaving the last prompt position to run', () => {
    const log: string[] = [];
    const pc = new PrefixCache(1000);
    pc.insert(key([1, 2, 3, 4]), () => fakeCache(10, log, 'a'));
    pc.insert(key([1, 2, 9]), () => fakeCache(10, log, 'b'));
    assert.equal(pc.lookup(key([1, 2, 3, 4, 5]), whole)?.length, 4);
    assert.equal(pc.lookup(key([1, 2, 3, 4]), whole)?.length, 3, 'the same prompt: all but its last position');
    assert.equal(pc.lookup(key([1, 2, 9, 9]), whole)?.length, 3);
    assert.equal(pc.lookup(key([7, 1, 2]), whole), null);
    assert.equal(pc.hits, 3);
    assert.equal(pc.misses, 1);
    assert.equal(pc.lookup(key([1, 2, 3, 4, 5]), (p) => p - 2)?.length, 2, 'cut where the model can resume');
  });

  it('cuts a match at the first image whose picture differs', () => {
    const pc = new PrefixCache(1000);
    const ids = [1, 50, 50, 2, 50, 50, 3];
    pc.insert(key(ids, ['red', 'blue'], [1, 4]), () => fakeCache(10, [], 'a'));
    assert.equal(pc.lookup(key([...ids, 4], ['red', 'blue'], [1, 4]), whole)?.length, 7);
    assert.equal(pc.lookup(key([...ids, 4], ['red', 'green'], [1, 4]), whole)?.length, 4);
    assert.equal(pc.lookup(key([...ids, 4], ['green', 'blue'], [1, 4]), whole)?.length ?? 0, 1);
    assert.equal(pc.lookup(key([1, 50, 50, 2], ['green'], [1]), whole)?.length ?? 0, 1);
  });

  it('evicts the least recently used past its budget and drops prompts a newer one extends', () => {
    const log: string[] = [];
    const pc = new PrefixCache(25);
    pc.insert(key([1, 2]), () => fakeCache(10, log, 'a'));
    pc.insert(key([3, 4]), () => fakeCache(10, log, 'b'));
    assert.ok(pc.lookup(key([1, 2, 5]), whole), 'a is now the most recent');
    pc.insert(key([6, 7]), () => fakeCache(10, log, 'c'));
    assert.deepEqual(log, ['b'], 'b, least recently used, went');
    assert.equal(pc.bytes, 20);
    assert.equal(pc.evictions, 1);
    pc.insert(key([1, 2, 5]), () => fakeCache(10, log, 'a2'));
    assert.deepEqual(log, ['b', 'a'], 'a is a prefix of the new prompt: replaced, not evicted');
    assert.equal(pc.evictions, 1);
    assert.equal(pc.size, 2);
    let made = 0;
    pc.insert(key([1, 2, 5]), () => (made++, fakeCache(10, log, 'dup')));
    assert.equal(made, 0, 'a prompt already held is not copied again');
    pc.insert(key([8]), () => fakeCache(30, log, 'huge'));
    assert.deepEqual(log, ['b', 'a', 'huge'], 'larger than the whole budget: not kept');
    pc.clear();
    assert.equal(pc.bytes, 0);
    assert.equal(pc.size, 0);
    assert.deepEqual(log.slice(3).sort(), ['a2', 'c']);
  });

  it('keeps nothing with a budget of 0', () => {
    const pc = new PrefixCache(0);
    let made = 0;
    pc.insert(key([1, 2]), () => (made++, fakeCache(1, [], 'x')));
    assert.equal(made, 0);
    assert.equal(pc.lookup(key([1, 2, 3]), whole), null);
  });
});
