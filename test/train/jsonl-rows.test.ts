// readJsonlRows encodes a few rows at once (a video row waits on ffprobe) but keeps the file's order, and a bad row
// is still reported, or skipped, at its own line, whichever row finishes first.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bad, readJsonlRows } from '../../src/train/data.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-jsonl-rows-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Rows 1..n, where row k takes (n - k) * 3 ms: later rows finish first. */
function file(n: number, badAt: number[] = []): string {
  const p = join(tmp, `rows-${n}-${badAt.join('_')}.jsonl`);
  writeFileSync(p, Array.from({ length: n }, (_, i) => (badAt.includes(i + 1) ? '{"k": "bad"}' : JSON.stringify({ k: i + 1 }))).join('\n') + '\n');
  return p;
}
const slowEncode = (n: number) => async (obj: unknown, line: number): Promise<number> => {
  const k = (obj as { k: unknown }).k;
  await sleep((n - line) * 3);
  if (typeof k !== 'number') bad('k is not a number');
  return k as number;
};

describe('readJsonlRows', () => {
  it('keeps the file order when later rows finish first', async () => {
    const r = await readJsonlRows(file(12), 'rows', false, slowEncode(12));
    assert.deepEqual(r.examples, Array.from({ length: 12 }, (_, i) => i + 1));
    assert.equal(r.rows, 12);
  });

  it('a bad row is an error at its own line, or a skip there', async () => {
    const p = file(12, [3, 9]);
    await assert.rejects(readJsonlRows(p, 'rows', false, slowEncode(12)), /rows-12-3_9\.jsonl:3: k is not a number/);
    const r = await readJsonlRows(p, 'rows', true, slowEncode(12));
    assert.deepEqual(r.skipped.map((s) => s.line), [3, 9]);
    assert.deepEqual(r.examples, [1, 2, 4, 5, 6, 7, 8, 10, 11, 12]);
  });

  it('a line that is not JSON is a row error too', async () => {
    const p = join(tmp, 'notjson.jsonl');
    writeFileSync(p, '{"k": 1}\n{nope\n{"k": 3}\n');
    await assert.rejects(readJsonlRows(p, 'rows', false, slowEncode(3)), /notjson\.jsonl:2: not valid JSON/);
  });
});
