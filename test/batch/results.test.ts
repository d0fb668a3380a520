// The batch results file on its own: a torn last line is cut off on --resume (and its row is not counted done),
// whole lines are never touched, and a file that is not a results file is refused, never appended to.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openResults } from '../../src/batch/results.js';
import { parseRows } from '../../src/batch/rows.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'vlmkit-results-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('batch results file', () => {
  it('--resume cuts a torn last line and appends after the whole ones', () => withDir((dir) => {
    const f = join(dir, 'r.jsonl');
    writeFileSync(f, '{"id":"a","text":"x"}\n{"id":null,"line":3,"error":"bad"}\n{"id":"b","te');
    const r = openResults(f, true);
    assert.deepEqual([...r.done].sort(), ['id:"a"', 'line:3']);
    assert.equal(r.errors, 1);
    assert.equal(r.droppedBytes, 13);
    r.append([{ id: 'b', text: 'y' }]);
    r.close();
    assert.equal(readFileSync(f, 'utf8'), '{"id":"a","text":"x"}\n{"id":null,"line":3,"error":"bad"}\n{"id":"b","text":"y"}\n');
  }));

  it('refuses to overwrite results without --resume, and a file that is not results with it', () => withDir((dir) => {
    const f = join(dir, 'r.jsonl');
    writeFileSync(f, '{"id":"a","text":"x"}\n');
    assert.throws(() => openResults(f, false), /--out .*r\.jsonl already has results; pass --resume/);
    const other = join(dir, 'notes.txt');
    writeFileSync(other, 'some notes\nmore\n');
    assert.throws(() => openResults(other, true), /notes\.txt:1 is not a JSON line, so it is not a vlmkit batch results file/);
    assert.equal(readFileSync(other, 'utf8'), 'some notes\nmore\n');
  }));

  it('keys rows as the results file does: by id, by line when the id is missing or repeated', () => {
    const rows = parseRows('{"id": 1, "prompt": "a"}\n\n{"prompt": "b"}\n{"id": 1, "prompt": "c"}\n{"id": "1", "prompt": "d"}\n', '/tmp');
    assert.deepEqual(rows.map((r) => [r.line, r.key, r.problem ?? null]), [
      [1, 'id:1', null],
      [3, 'line:3', 'the row has no "id"; give each row a unique string or number id'],
      [4, 'line:4', 'the id 1 is also on line 1; ids must be unique'],
      [5, 'id:"1"', null],
    ]);
  });
});
