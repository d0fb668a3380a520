// The eval runner with a stub model that answers known strings, so every score is exactly computable; and the
// JSONL row reader (references, categories, bad rows).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BatchItem } from '../../src/api.js';
import { encodeBoxes } from '../../src/data/loc.js';
import { readEvalRows } from '../../src/eval/rows.js';
import { runEval, type EvalModel } from '../../src/eval/runner.js';
import { VlmkitError } from '../../src/errors.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const IMAGE = join(ROOT, 'test', 'fixtures', 'reference', 'images', 'wide_90x150.png'); // 150 wide, 90 high
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-eval-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
copyFileSync(IMAGE, join(tmp, 'a.png'));

const row = (q: string, answer: string | string[] | null, category: string, extra: Record<string, unknown> = {}) => ({
  messages: [
    { role: 'user', content: [{ type: 'image' }, { type: 'text', text: q }] },
    { role: 'assistant', content: [{ type: 'text', text: Array.isArray(answer) ? answer[0] : (answer ?? 'from the message') }] },
  ],
  images: ['a.png'],
  category,
  ...(answer !== null && { answer }),
  ...extra,
});

function writeRows(name: string, rows: unknown[]): string {
  const file = join(tmp, name);
  writeFileSync(file, rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
  return file;
}

/** Answers by the question text; records the batch sizes it was called with. */
function stub(answers: Record<string, string>): EvalModel & { batches: number[] } {
  const batches: number[] = [];
  return {
    batches,
    async generateBatch(items: readonly BatchItem[]) {
      batches.push(items.length);
      return items.map((it) => {
        const msgs = it.prompt as unknown as { content: { type: string; text?: string }[] }[];
        const q = msgs[msgs.length - 1]!.content.find((p) => p.type === 'text')!.text!;
        assert.equal(it.images?.length, 1, 'the row image is decoded and passed');
        return { text: ` ${answers[q] ?? '??'} ` };
      });
    },
  };
}

describe('eval runner with a stub model', () => {
  it('exact: score, per-category table and the wrong rows', async () => {
    const file = writeRows('exact.jsonl', [
      row('q1', '3', 'count'),
      row('q2', 'red', 'colour'),
      row('q3', 'blue', 'colour'),
      '',
      row('q4', null, 'count'), // reference from the assistant message
      row('q5', 'yes', 'presence'),
    ]);
    const { rows, skipped } = await readEvalRows(file);
    assert.equal(rows.length, 5);
    assert.deepEqual(skipped, []);
    assert.deepEqual(rows[3]!.references, ['from the message']);
    assert.equal(rows[4]!.line, 6, 'lines count blank ones');
    const model = stub({ q1: '3', q2: 'Red.', q3: 'green', q4: 'from the message', q5: 'no' });
    const r = await runEval(model, rows, { metric: 'exact', batchSize: 2 });
    assert.deepEqual(model.batches, [2, 2, 1]);
    assert.equal(r.rows, 5);
    assert.equal(r.score, 3 / 5);
    assert.equal(r.accuracy, 3 / 5);
    assert.deepEqual(Object.keys(r.per_category), ['colour', 'count', 'presence']);
    assert.deepEqual(r.per_category.count, { rows: 2, score: 1, accuracy: 1 });
    assert.deepEqual(r.per_category.colour, { rows: 2, score: 0.5, accuracy: 0.5 });
    assert.deepEqual(r.per_category.presence, { rows: 1, score: 0, accuracy: 0 });
    assert.deepEqual(r.wrong.map((w) => [w.line, w.prediction, w.references]), [[3, 'green', ['blue']], [6, 'no', ['yes']]]);
  });

  it('vqa and relaxed over several answers', async () => {
    const file = writeRows('vqa.jsonl', [
      row('a', null, 'x', { answers: ['2', '2', '3', '3', '3', '3', '3', '3', '3', '3'] }),
      row('b', null, 'x', { answers: ['dog', 'dog', 'dog', 'dog'] }),
    ]);
    const { rows } = await readEvalRows(file);
    const r = await runEval(stub({ a: 'two', b: 'a dog' }), rows, { metric: 'vqa' });
    const a = (2 * (1 / 3) + 8 * (2 / 3)) / 10;
    assert.ok(Math.abs(r.score - (a + 1) / 2) < 1e-12, String(r.score));
    assert.equal(r.accuracy, 1 / 2);
    const rel = await runEval(stub({ a: '3.1', b: 'cat' }), rows, { metric: 'relaxed' });
    assert.equal(rel.score, 1 / 2);
  });

  it('iou: boxes from location tokens in the image\'s pixels, mean IoU and accuracy at 0.5', async () => {
    const W = 150;
    const H = 90;
    const box = { x0: 30, y0: 18, x1: 90, y1: 72, label: 'circle' };
    const most = { x0: 30, y0: 18, x1: 80, y1: 72, label: 'circle' }; // IoU 50/60
    const third = { x0: 60, y0: 18, x1: 120, y1: 72, label: 'circle' }; // overlap 30 of 90 wide: IoU 1/3
    const file = writeRows('iou.jsonl', [
      row('exact', encodeBoxes([box], W, H), 'ground', { box }),
      row('most', encodeBoxes([box], W, H), 'ground', { box }),
      row('third', encodeBoxes([box], W, H), 'ground', { box }),
      row('none', encodeBoxes([box], W, H), 'other'), // reference box from the answer's tokens
    ]);
    const { rows } = await readEvalRows(file);
    const model = stub({ exact: encodeBoxes([box], W, H), most: encodeBoxes([most], W, H), third: encodeBoxes([third], W, H), none: 'a circle' });
    const r = await runEval(model, rows, { metric: 'iou' });
    // bins are 1/1023 of a side: coordinates move by at most 0.08 px here
    const near = (x: number | undefined, want: number, tol = 0.01) => assert.ok(Number.isFinite(x) && Math.abs(x! - want) < tol, `${x} != ${want}`);
    assert.deepEqual(r.wrong.map((w) => w.line), [3, 4]);
    near(r.wrong[0]!.score, 1 / 3);
    assert.equal(r.wrong[1]!.score, 0);
    assert.equal(r.wrong[1]!.predicted_box, null);
    near(r.wrong[1]!.box!.x0, 30, 0.08);
    near(r.wrong[1]!.box!.y1, 72, 0.05);
    near(r.mean_iou, (1 + 5 / 6 + 1 / 3 + 0) / 4);
    assert.equal(r.accuracy_iou50, 2 / 4);
    assert.deepEqual(r.per_category.other, { rows: 1, score: 0, accuracy: 0 });
  });

  it('a missing image is a clear error naming the file and line, or skipped when asked', async () => {
    const file = writeRows('missing.jsonl', [row('q1', '3', 'c'), { ...row('q2', '4', 'c'), images: ['nope.png'] }, '{not json']);
    await assert.rejects(readEvalRows(file), (e: unknown) => e instanceof VlmkitError && /missing\.jsonl:2: image .*nope\.png does not exist/.test(e.message) && /--skip-bad-rows/.test(e.message));
    const { rows, skipped } = await readEvalRows(file, { skipBadRows: true });
    assert.equal(rows.length, 1);
    assert.deepEqual(skipped.map((s) => s.line), [2, 3]);
    assert.match(skipped[1]!.reason, /not valid JSON/);
  });

  it('an image that cannot be decoded fails its row (or is skipped), and maxRows stops early', async () => {
    writeFileSync(join(tmp, 'broken.png'), 'not a png');
    const file = writeRows('broken.jsonl', [row('q1', '3', 'c'), { ...row('q2', '4', 'c'), images: ['broken.png'] }, row('q3', '5', 'c')]);
    const { rows } = await readEvalRows(file);
    await assert.rejects(runEval(stub({}), rows, { metric: 'exact', source: 'broken.jsonl' }), /broken\.jsonl:2: /);
    const r = await runEval(stub({ q1: '3', q3: '5' }), rows, { metric: 'exact', skipBadRows: true });
    assert.equal(r.rows, 2);
    assert.equal(r.score, 1);
    assert.deepEqual(r.skipped.map((s) => s.line), [2]);
    const first = await readEvalRows(file, { maxRows: 1 });
    assert.equal(first.rows.length, 1);
  });
});
