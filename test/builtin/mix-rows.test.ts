// scripts/mix-rows.ts (the built-in model trains on shapes conversations mixed with motion clips): the first N rows
// of each input, media paths rewritten so they still name the same files from the output's folder, and a
// dataset.json that says what went in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

test('mix-rows takes the first N rows of each file and keeps every image and video path pointing at its file', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-mix-'));
  try {
    for (const d of ['a', 'b', 'out/deep']) mkdirSync(join(tmp, d), { recursive: true });
    const img = (i: number) => ({ messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: `q${i}` }] }, { role: 'assistant', content: 'x' }], images: [`images/${i}.png`] });
    const vid = (i: number) => ({ messages: [{ role: 'user', content: [{ type: 'video', path: `clips/${i}.mp4` }, { type: 'text', text: 'What happens?' }] }, { role: 'assistant', content: 'y' }] });
    writeFileSync(join(tmp, 'a', 'train.jsonl'), [0, 1, 2].map((i) => JSON.stringify(img(i))).join('\n') + '\n');
    writeFileSync(join(tmp, 'a', 'dataset.json'), JSON.stringify({ generator: 'shapes', seed: 3 }));
    writeFileSync(join(tmp, 'b', 'train.jsonl'), [0, 1].map((i) => JSON.stringify(vid(i))).join('\n') + '\n');
    const out = join(tmp, 'out', 'deep', 'mix.jsonl');
    const r = spawnSync(process.execPath, ['--import', 'tsx', resolve('scripts/mix-rows.ts'), out, join(tmp, 'b', 'train.jsonl'), `${join(tmp, 'a', 'train.jsonl')}:2`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(rows.length, 4);
    const at = (p: string) => resolve(dirname(out), p);
    assert.deepEqual(rows.slice(0, 2).map((x) => at(x.messages[0].content[0].path)), [0, 1].map((i) => join(tmp, 'b', 'clips', `${i}.mp4`)));
    assert.deepEqual(rows.slice(2).map((x) => at(x.images[0])), [0, 1].map((i) => join(tmp, 'a', 'images', `${i}.png`)));
    assert.equal(rows[2].messages[0].content[1].text, 'q0');
    const info = JSON.parse(readFileSync(join(dirname(out), 'dataset.json'), 'utf8'));
    assert.deepEqual(info.parts.map((p: { rows: number; dataset: unknown }) => [p.rows, p.dataset]), [[2, null], [2, { generator: 'shapes', seed: 3 }]]);
    // asking for more rows than a file has is an error, and nothing is written
    const bad = spawnSync(process.execPath, ['--import', 'tsx', resolve('scripts/mix-rows.ts'), join(tmp, 'out', 'bad.jsonl'), `${join(tmp, 'b', 'train.jsonl')}:5`], { encoding: 'utf8' });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /has 2 rows, fewer than the 5 asked for/);
    assert.throws(() => readFileSync(join(tmp, 'out', 'bad.jsonl')));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
