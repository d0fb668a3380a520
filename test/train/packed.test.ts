// packedArray: a data set kept as JSON strings reads as the array it was made from, and refuses writes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { packedArray } from '../../src/train/packed.js';

const rows = [
  { inputIds: [1, 2, 3], spans: [[0, 2]], name: 'a', on: true, n: null },
  { inputIds: [], spans: [], name: 'b', on: false, n: 1.5 },
  { inputIds: [7], spans: [[1, 1]], name: 'c', on: true, n: -2 },
];

describe('packedArray', () => {
  it('reads as the array: index, length, iteration, methods, spread, JSON', () => {
    const p = packedArray(rows);
    assert.equal(p.length, 3);
    assert.ok(Array.isArray(p));
    assert.deepEqual(p[1], rows[1]);
    assert.equal(p[3], undefined);
    assert.equal((p as unknown as Record<string, unknown>)['1.0'], undefined, 'only canonical indices are rows');
    assert.deepEqual([...p], rows);
    const seen: string[] = [];
    for (const r of p) seen.push(r.name);
    assert.deepEqual(seen, ['a', 'b', 'c']);
    assert.deepEqual(p.map((r) => r.inputIds.length), [3, 0, 1]);
    assert.deepEqual(p.filter((r) => r.on).map((r) => r.name), ['a', 'c']);
    assert.equal(p.reduce((a, r) => a + r.inputIds.length, 0), 4);
    assert.deepEqual(p.slice(1, 3), rows.slice(1, 3));
    assert.deepEqual(Object.keys(p), ['0', '1', '2']);
    assert.ok(1 in p && !(3 in p));
    assert.equal(JSON.stringify(p), JSON.stringify(rows));
  });

  it('gives a fresh copy at every read, and refuses writes', () => {
    const p = packedArray(rows);
    const a = p[0]!;
    a.inputIds.push(99);
    assert.deepEqual(p[0]!.inputIds, [1, 2, 3], 'a change to a row read out does not reach the data set');
    assert.throws(() => { (p as typeof rows)[0] = rows[1]!; }, /read-only/);
    assert.throws(() => { (p as typeof rows).push(rows[0]!); }, /read-only/);
    assert.throws(() => { (p as typeof rows).length = 0; }, /read-only/);
  });
});
