// `vlmkit batch --prompt "..." <images folder>`: every image under the folder (sorted, nested folders too, other
// files left out and counted) is a row whose id is its relative path; the job writes exactly what the equivalent
// --input job writes, with one prompt or several, and a folder job stopped part way and resumed equals an
// uninterrupted one.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { folderRows, readPrompts } from '../../src/batch/folder.js';
import { ROOT } from '../e2e/spawn-cli.js';
import { picture } from './pictures.js';
import { batchCli, lineCount } from './run-batch.js';

const MODEL = join(ROOT, 'test', 'fixtures', 'reference', 'tiny-smolvlm');
const GEN = ['--temperature', '0', '--max-new-tokens', '3', '--batch-size', '4'];

describe('vlmkit batch over a folder', () => {
  let tmp: string;
  let pics: string;
  /** the images' relative paths in the order the job must take them */
  const expectedIds: string[] = [];
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'vlmkit-batch-folder-'));
    pics = join(tmp, 'pics');
    mkdirSync(join(pics, 'b', 'deep'), { recursive: true });
    mkdirSync(join(pics, 'a'));
    mkdirSync(join(pics, '.cache'));
    // 24 pictures across three folders; names sort differently as numbers and as text (10 before 2)
    for (let i = 0; i < 24; i++) {
      const rel = i < 8 ? `a/p${i}.png` : i < 16 ? `b/deep/p${i}.png` : `p${i}.png`;
      writeFileSync(join(pics, rel), picture(i));
    }
    expectedIds.push(...['a/p0.png', 'a/p1.png', 'a/p2.png', 'a/p3.png', 'a/p4.png', 'a/p5.png', 'a/p6.png', 'a/p7.png',
      'b/deep/p10.png', 'b/deep/p11.png', 'b/deep/p12.png', 'b/deep/p13.png', 'b/deep/p14.png', 'b/deep/p15.png', 'b/deep/p8.png', 'b/deep/p9.png',
      'p16.png', 'p17.png', 'p18.png', 'p19.png', 'p20.png', 'p21.png', 'p22.png', 'p23.png']);
    // left out: not images by name, a hidden folder (counted once), a link
    writeFileSync(join(pics, 'notes.txt'), 'not a picture\n');
    writeFileSync(join(pics, 'b', 'labels.jsonl'), '{}\n');
    writeFileSync(join(pics, '.cache', 'x.png'), picture(99));
    symlinkSync(join(pics, 'p16.png'), join(pics, 'link.png'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('lists every image sorted by relative path, counts what it leaves out, ids per prompt', () => {
    const one = folderRows(pics, ['What is it?']);
    assert.deepEqual(one.rows.map((r) => r.id), expectedIds);
    assert.equal(one.images, 24);
    assert.equal(one.ignored, 4);
    assert.ok(one.rows.every((r) => r.problem === undefined && r.images.length === 1 && r.images[0] === join(pics, r.id as string)));
    const two = folderRows(pics, ['What is it?', 'What colour?']);
    assert.deepEqual(two.rows.slice(0, 4).map((r) => r.id), ['a/p0.png#1', 'a/p0.png#2', 'a/p1.png#1', 'a/p1.png#2']);
    assert.equal(two.rows.length, 48);
  });

  it('refuses a missing, empty or non-folder path and an empty prompts file, naming it', () => {
    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    writeFileSync(join(empty, 'readme.md'), 'x');
    assert.throws(() => folderRows(join(tmp, 'nope'), ['q']), /the folder .*nope does not exist/);
    assert.throws(() => folderRows(empty, ['q']), /no images \(.*\) under .*empty/);
    assert.throws(() => folderRows(join(pics, 'notes.txt'), ['q']), /notes\.txt is not a folder/);
    const blank = join(tmp, 'blank.txt');
    writeFileSync(blank, '\n  \n');
    assert.throws(() => readPrompts(blank), /--prompts .*blank\.txt has no prompts/);
    const prompts = join(tmp, 'prompts.txt');
    writeFileSync(prompts, 'first?\r\n\nsecond?\n');
    assert.deepEqual(readPrompts(prompts), ['first?', 'second?']);
  });

  it('a folder job writes what the equivalent --input job writes', async () => {
    const folderOut = join(tmp, 'folder.jsonl');
    const r = await batchCli(MODEL, ['--prompt', 'What is in the picture?', pics, '--out', folderOut, ...GEN]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /24 images in .*pics \(4 other files left out\), 1 prompt each/);
    const rows = join(tmp, 'rows.jsonl');
    writeFileSync(rows, expectedIds.map((id) => JSON.stringify({ id, image: `pics/${id}`, prompt: 'What is in the picture?' })).join('\n') + '\n');
    const inputOut = join(tmp, 'input.jsonl');
    const r2 = await batchCli(MODEL, ['--input', rows, '--out', inputOut, ...GEN]);
    assert.equal(r2.code, 0, r2.stderr);
    const got = readFileSync(folderOut, 'utf8');
    assert.equal(got, readFileSync(inputOut, 'utf8'));
    const lines = got.trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.id), expectedIds);
    assert.ok(lines.every((l) => l.error === undefined && typeof l.text === 'string' && l.completion_tokens === 3), got.slice(0, 400));
  });

  it('several prompts: stopped part way and resumed equals an uninterrupted run and the --input job', async () => {
    const promptsFile = join(tmp, 'more.txt');
    writeFileSync(promptsFile, 'What colour is the box?\n');
    const args = ['--prompt', 'What is in the picture?', '--prompts', promptsFile, pics, ...GEN];
    const whole = join(tmp, 'whole2.jsonl');
    const r0 = await batchCli(MODEL, [...args, '--out', whole]);
    assert.equal(r0.code, 0, r0.stderr);
    const expected = readFileSync(whole, 'utf8');
    assert.equal(expected.trimEnd().split('\n').length, 48);

    const rows = join(tmp, 'rows2.jsonl');
    writeFileSync(rows, expectedIds.flatMap((id) => [
      JSON.stringify({ id: `${id}#1`, image: `pics/${id}`, prompt: 'What is in the picture?' }),
      JSON.stringify({ id: `${id}#2`, image: `pics/${id}`, prompt: 'What colour is the box?' }),
    ]).join('\n') + '\n');
    const viaInput = join(tmp, 'input2.jsonl');
    const ri = await batchCli(MODEL, ['--input', rows, '--out', viaInput, ...GEN]);
    assert.equal(ri.code, 0, ri.stderr);
    assert.equal(readFileSync(viaInput, 'utf8'), expected);

    const out = join(tmp, 'resumed2.jsonl');
    const r1 = await batchCli(MODEL, [...args, '--out', out], { when: () => lineCount(out) >= 8, signal: 'SIGINT' });
    assert.equal(r1.code, 130, r1.stderr);
    const n1 = lineCount(out);
    assert.ok(n1 >= 8 && n1 < 48, `stopped part way (${n1} rows)`);
    const r2 = await batchCli(MODEL, [...args, '--out', out, '--resume']);
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stderr, new RegExp(`${n1} rows are already in`));
    assert.match(r2.stderr, new RegExp(`batch: ${48 - n1}/${48 - n1} rows, 0 errors`));
    assert.equal(readFileSync(out, 'utf8'), expected);
  });

  it('argument mistakes are one clear line', async () => {
    const out = join(tmp, 'never.jsonl');
    const noPrompt = await batchCli(MODEL, [pics, '--out', out]);
    assert.equal(noPrompt.code, 1);
    assert.match(noPrompt.stderr, /give the question to ask of every image in .*pics with --prompt/);
    const both = await batchCli(MODEL, ['--input', join(tmp, 'rows.jsonl'), '--prompt', 'q', '--out', out]);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /--prompt and --prompts go with an images folder/);
    const emptyPrompt = await batchCli(MODEL, ['--prompt', ' ', pics, '--out', out]);
    assert.equal(emptyPrompt.code, 1);
    assert.match(emptyPrompt.stderr, /--prompt is empty/);
  });
});
