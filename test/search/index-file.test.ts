// The search index file and the top-k query: a round trip, every kind of damage refused with the file and the fix
// named, top-k equal to a full sort, and 100k x 512 top-10 in milliseconds.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileFormatError } from '../../src/errors.js';
import { SearchIndex } from '../../src/search/index-file.js';
import { dotRows, topK } from '../../src/search/topk.js';
import { loadAddon } from '../../src/engine/backend/native/addon.js';

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
}

function randomRows(n: number, dim: number, seed: number): Float32Array {
  const r = rng(seed), a = new Float32Array(n * dim);
  for (let i = 0; i < a.length; i++) a[i] = r() * 2 - 1;
  return a;
}

/** The k best by a full sort: score descending, row ascending on ties. */
function bruteTop(scores: Float32Array, k: number): { index: number; score: number }[] {
  return Array.from(scores, (score, index) => ({ index, score })).filter((h) => !Number.isNaN(h.score))
    .sort((a, b) => b.score - a.score || a.index - b.index).slice(0, k);
}

describe('search index file', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-sidx-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const files = [{ path: 'a.png', mtimeMs: 1.5, size: 10 }, { path: 'sub/b é.jpg', mtimeMs: 1796567827793.0884, size: 0 }, { path: 'c.webp', mtimeMs: 3, size: 7 }];
  const make = () => new SearchIndex({ family: 'clip', id: 'abc' }, 4, files, randomRows(3, 4, 7));

  it('round-trips: model, dim, files and every float, 64-byte aligned embeddings', () => {
    const p = join(tmp, 'i.idx');
    const ix = make();
    ix.write(p);
    const back = SearchIndex.read(p);
    assert.deepEqual(back.model, ix.model);
    assert.equal(back.dim, 4);
    assert.deepEqual(back.files, files);
    assert.deepEqual([...back.embeddings], [...ix.embeddings]);
    const b = readFileSync(p);
    assert.equal(b.toString('latin1', 0, 8), 'VLMKSIDX');
    assert.equal(b.readUInt32LE(8), 1);
    assert.equal((16 + b.readUInt32LE(12)) % 64, 0);
    assert.equal(b.length, 16 + b.readUInt32LE(12) + 3 * 4 * 4 + 4);
  });

  it('a truncated, corrupt, foreign or newer-version file is one FileFormatError naming the file and --rebuild', () => {
    const p = join(tmp, 'good.idx');
    make().write(p);
    const good = readFileSync(p);
    const flip = Buffer.from(good);
    flip[good.length - 10] ^= 0x40; // a bit of the last embedding
    const header = Buffer.from(good);
    header[40] ^= 0x01; // a byte of the JSON header
    const v2 = Buffer.from(good);
    v2.writeUInt32LE(2, 8);
    const cases: [string, Buffer, RegExp][] = [
      ['empty', Buffer.alloc(0), /does not start with "VLMKSIDX"/],
      ['other file', Buffer.from('\x89PNG\r\n\x1a\n0000000000000000'), /does not start with "VLMKSIDX"/],
      ['truncated in the header', good.subarray(0, 30), /truncated/],
      ['truncated in the data', good.subarray(0, good.length - 9), /checksum|bytes/],
      ['a flipped bit in the data', flip, /checksum/],
      ['a flipped bit in the header', header, /checksum/],
      ['a newer version', v2, /format version 2/],
    ];
    for (const [what, bytes, re] of cases) {
      const f = join(tmp, `bad-${what.replace(/\W/g, '_')}.idx`);
      writeFileSync(f, bytes);
      assert.throws(() => SearchIndex.read(f), (e: unknown) => e instanceof FileFormatError && re.test(e.message) && e.message.includes(f) && /--rebuild/.test(e.message) && !e.message.includes('\n'), what);
    }
    assert.throws(() => SearchIndex.read(join(tmp, 'missing.idx')), /cannot read the search index .*missing\.idx.*--rebuild/);
    // well-formed bytes, but one path twice: the update could not tell which row is the file's
    const dup = join(tmp, 'dup.idx');
    new SearchIndex({ family: 'clip', id: 'abc' }, 1, [files[0]!, files[0]!], new Float32Array(2)).write(dup);
    assert.throws(() => SearchIndex.read(dup), (e: unknown) => e instanceof FileFormatError && /"a\.png" twice/.test(e.message) && e.message.includes(dup));
  });
});

describe('top-k', () => {
  it('equals a full sort, ties by row, NaN never selected, k beyond the count', () => {
    const r = rng(3);
    for (const n of [0, 1, 5, 100, 1000]) {
      const s = new Float32Array(n).map(() => Math.round(r() * 20) / 20); // many ties
      if (n > 3) s[2] = NaN;
      for (const k of [1, 3, 10, 2000]) assert.deepEqual(topK(s, k), bruteTop(s, k), `n=${n} k=${k}`);
    }
    assert.throws(() => topK(new Float32Array(3), 0), /integer >= 1/);
  });

  it('100k x 512 top-10: equal to a brute-force sort, best of 7 under 50 ms (or 2x one read of the matrix on a busy machine)', (t) => {
    const N = 100_000, D = 512;
    const m = randomRows(N, D, 11), q = randomRows(1, D, 12);
    const ix = new SearchIndex({ family: 'clip', id: 'x' }, D, Array.from({ length: N }, (_, i) => ({ path: `${i}.png`, mtimeMs: 0, size: 0 })), m);
    // the brute force in f64, every row
    const ref = new Float32Array(N);
    for (let i = 0; i < N; i++) {
      let s = 0;
      for (let j = 0; j < D; j++) s += m[i * D + j]! * q[j]!;
      ref[i] = s;
    }
    const got = ix.topRows(q, 10);
    const want = bruteTop(ref, 10);
    assert.deepEqual(got.map((h) => h.index), want.map((h) => h.index));
    got.forEach((h, i) => assert.ok(Number.isFinite(h.score) && Math.abs(h.score - want[i]!.score) <= 1e-3, `${h.score} vs ${want[i]!.score}`));
    // the engine's scores match the f64 ones everywhere (not only in the top)
    const s = dotRows(m, N, D, q);
    let worst = 0;
    for (let i = 0; i < N; i++) worst = Math.max(worst, Math.abs(s[i]! - ref[i]!));
    assert.ok(Number.isFinite(worst) && worst <= 1e-3, `max score error ${worst}`);
    // timing: the best of several whole queries (scores + selection), each beside the machine's own read sweep of
    // the same 205 MB (the addon's bandwidth probe). A query can never beat one read of the matrix, so where other
    // processes hold the cores (a niced test beside a training run) and the sweep alone takes over 25 ms, the bound
    // is 2x the sweep instead of 50 ms: still failing for a query that does more than read the matrix once or twice.
    const addon = loadAddon();
    const clock = (f: () => void) => {
      const t0 = performance.now();
      f();
      return performance.now() - t0;
    };
    let best = Infinity, sweep = Infinity;
    for (let i = 0; i < 7; i++) {
      best = Math.min(best, clock(() => ix.topRows(q, 10)));
      sweep = Math.min(sweep, clock(() => addon.streamProbe([m], null, false)));
    }
    t.diagnostic(`100k x 512 top-10: ${best.toFixed(1)} ms, read sweep of the matrix ${sweep.toFixed(1)} ms (best of 7 each)`);
    const bound = Math.max(50, 2 * sweep);
    assert.ok(Number.isFinite(best) && Number.isFinite(sweep) && best < bound, `100k x 512 top-10 took ${best.toFixed(1)} ms (best of 7), bound ${bound.toFixed(1)} ms`);
  });
});
