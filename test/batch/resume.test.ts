// `vlmkit batch` as a user runs it: a 200-image job stopped twice (Ctrl-C, then a kill that also leaves a torn
// last line) and resumed writes exactly the results of an uninterrupted run; bad rows are error lines and the
// job goes on; a results file is never overwritten without --resume.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../e2e/spawn-cli.js';
import { picture } from './pictures.js';
import { batchCli, lineCount } from './run-batch.js';

const MODEL = join(ROOT, 'test', 'fixtures', 'reference', 'tiny-smolvlm');

describe('vlmkit batch', () => {
  let dir: string;
  let rows: string;
  const N = 200;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'vlmkit-batch-'));
    const lines: string[] = [];
    for (let i = 0; i < N; i++) {
      writeFileSync(join(dir, `pic-${i}.png`), picture(i));
      lines.push(JSON.stringify({ id: `img-${i}`, image: `pic-${i}.png`, prompt: `What is in picture ${i}?`, sampling: { temperature: 0, max_tokens: 3 } }));
    }
    rows = join(dir, 'rows.jsonl');
    writeFileSync(rows, lines.join('\n') + '\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a 200-image job interrupted twice and resumed equals an uninterrupted run', async () => {
    const whole = join(dir, 'whole.jsonl');
    const r0 = await batchCli(MODEL, ['--input', rows, '--out', whole, '--batch-size', '4']);
    assert.equal(r0.code, 0, r0.stderr);
    const expected = readFileSync(whole, 'utf8');
    const lines = expected.trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, N);
    assert.deepEqual(lines.map((l) => l.id), Array.from({ length: N }, (_, i) => `img-${i}`));
    assert.ok(lines.every((l) => l.error === undefined && typeof l.text === 'string' && l.completion_tokens === 3), expected.slice(0, 500));
    assert.ok(new Set(lines.map((l) => l.text)).size > 1, 'the pictures have different answers');

    const out = join(dir, 'resumed.jsonl');
    // Ctrl-C: stops at once, keeps what it wrote, says how to go on
    const r1 = await batchCli(MODEL, ['--input', rows, '--out', out, '--batch-size', '4'], { when: () => lineCount(out) >= 30, signal: 'SIGINT' });
    assert.equal(r1.code, 130, r1.stderr);
    assert.match(r1.stderr, /interrupted; .* run the same command with --resume/);
    const n1 = lineCount(out);
    assert.ok(n1 >= 30 && n1 < N, `stopped part way (${n1} rows)`);
    assert.equal(readFileSync(out, 'utf8'), expected.split('\n').slice(0, n1).join('\n') + '\n', 'the rows written so far are the uninterrupted run\'s');

    // without --resume the results are not touched
    const r2 = await batchCli(MODEL, ['--input', rows, '--out', out]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /already has results; pass --resume/);
    assert.equal(lineCount(out), n1);

    // a kill mid-run, then a torn last line as a crash mid-write would leave
    const r3 = await batchCli(MODEL, ['--input', rows, '--out', out, '--batch-size', '4', '--resume'], { when: () => lineCount(out) >= n1 + 40, signal: 'SIGKILL' });
    assert.equal(r3.signal, 'SIGKILL', r3.stderr);
    assert.match(r3.stderr, new RegExp(`${n1} rows are already in`));
    const n3 = lineCount(out);
    assert.ok(n3 >= n1 + 40 && n3 < N, `killed part way (${n3} rows)`);
    appendFileSync(out, '{"id":"img-9999","te');

    const r4 = await batchCli(MODEL, ['--input', rows, '--out', out, '--batch-size', '4', '--resume']);
    assert.equal(r4.code, 0, r4.stderr);
    assert.match(r4.stderr, /dropped a torn last line \(20 bytes\)/);
    assert.match(r4.stderr, new RegExp(`batch: ${N - n3}/${N - n3} rows, 0 errors`));
    assert.equal(readFileSync(out, 'utf8'), expected);
  });

  it('bad rows become error lines and the job goes on', async () => {
    const input = join(dir, 'mixed.jsonl');
    writeFileSync(input, [
      JSON.stringify({ id: 'ok-1', image: 'pic-1.png', prompt: 'hi', sampling: { temperature: 0, max_tokens: 2 } }),
      '{"id": "broken", ',
      JSON.stringify({ id: 'no-file', image: 'nope.png', prompt: 'hi' }),
      JSON.stringify({ id: 'not-png', image: 'rows.jsonl', prompt: 'hi' }),
      JSON.stringify({ prompt: 'no id' }),
      JSON.stringify({ id: 'ok-1', prompt: 'again' }),
      JSON.stringify({ id: 'no-prompt', image: 'pic-2.png' }),
      JSON.stringify({ id: 'bad-sampling', prompt: 'hi', sampling: { temperature: 'hot' } }),
      JSON.stringify({ id: 'ok-2', prompt: 'text only', sampling: { temperature: 0, max_tokens: 2 } }),
    ].join('\n') + '\n');
    const out = join(dir, 'mixed-out.jsonl');
    const r = await batchCli(MODEL, ['--input', input, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /batch: 9\/9 rows, 7 errors/);
    const got = readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(got.map((l) => [l.id, l.line ?? null]), [
      ['ok-1', null], [null, 2], ['no-file', null], ['not-png', null], [null, 5], ['ok-1', 6], ['no-prompt', null], ['bad-sampling', null], ['ok-2', null],
    ]);
    const errors = Object.fromEntries(got.filter((l) => l.error !== undefined).map((l) => [l.id ?? `line ${l.line}`, l.error]));
    assert.match(errors['line 2'], /^not valid JSON/);
    assert.match(errors['no-file'], /nope\.png/);
    assert.match(errors['not-png'], /rows\.jsonl/);
    assert.match(errors['line 5'], /no "id"/);
    assert.match(errors['no-prompt'], /needs "prompt"/);
    assert.match(errors['bad-sampling'], /sampling\.temperature must be a number from 0 to 2 \(0 = greedy\), got "hot"/);
    assert.equal(got.find((l) => l.id === 'ok-1' && l.line === 6).error, 'the id "ok-1" is also on line 1; ids must be unique');
    for (const e of Object.values(errors)) assert.ok(!String(e).includes('\n'), 'one line');
    assert.equal(got.filter((l) => typeof l.text === 'string').length, 2);
    // a resume has nothing left to do: error rows count as done
    const again = await batchCli(MODEL, ['--input', input, '--out', out, '--resume']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /9 rows are already in .* \(7 of them errors\)/);
    assert.equal(readFileSync(out, 'utf8').trimEnd().split('\n').length, 9);
  });
});
