// `vlmkit eval` and `vlmkit ask --json/--draw` spawned as a user runs them, on the tiny random SmolVLM fixture.
// Its answers are noise, so accuracy is about 0: the checks are the report's structure and counts, the
// per-category table, the wrong rows, and a missing image as a clear error or a skipped row.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT, vlmkit } from './spawn-cli.js';
import { loadImage } from '../../src/processing/decode.js';

const MODEL = join(ROOT, 'test', 'fixtures', 'reference', 'tiny-smolvlm');
const IMAGES = join(ROOT, 'test', 'fixtures', 'reference', 'images');


const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-evalcli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
copyFileSync(join(IMAGES, 'wide_90x150.png'), join(tmp, 'wide.png'));
copyFileSync(join(IMAGES, 'square_64x64.png'), join(tmp, 'square.png'));

const row = (image: string, q: string, answer: string, category: string) => ({
  messages: [
    { role: 'user', content: [{ type: 'image' }, { type: 'text', text: q }] },
    { role: 'assistant', content: [{ type: 'text', text: answer }] },
  ],
  images: [image],
  category,
  answer,
});
const ROWS = [
  row('wide.png', 'How many circles?', '3', 'count'),
  row('square.png', 'What colour is it?', 'red', 'colour'),
  row('missing.png', 'How many squares?', '2', 'count'),
  row('wide.png', 'What colour is the star?', 'blue', 'colour'),
  row('square.png', 'Is there a star?', 'no', 'presence'),
];
const DATA = join(tmp, 'test.jsonl');
writeFileSync(DATA, ROWS.map((r) => JSON.stringify(r)).join('\n') + '\n');

describe('vlmkit eval on the tiny model', () => {
  it('a missing image is a one-line error naming the file, line and image', async () => {
    const r = await vlmkit(['eval', '--model', MODEL, '--data', DATA, '--max-new-tokens', '2']);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^vlmkit: .*test\.jsonl:3: image .*missing\.png does not exist.*--skip-bad-rows/);
  });

  it('--skip-bad-rows: a JSON report with counts, categories, wrong rows and the skipped row; --out matches', async () => {
    const out = join(tmp, 'reports', 'report.json');
    const r = await vlmkit(['eval', '--model', MODEL, '--data', DATA, '--skip-bad-rows', '--batch-size', '2', '--max-new-tokens', '3', '--json', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as {
      metric: string; model: string; rows: number; score: number; accuracy: number;
      per_category: Record<string, { rows: number; score: number; accuracy: number }>;
      wrong: { line: number; category: string; prediction: string; references: string[] }[];
      skipped: { line: number; reason: string }[];
    };
    assert.equal(rep.metric, 'exact');
    assert.equal(rep.rows, 4);
    assert.deepEqual(Object.keys(rep.per_category), ['colour', 'count', 'presence']);
    assert.deepEqual(Object.values(rep.per_category).map((c) => c.rows), [2, 1, 1]);
    assert.ok(Number.isFinite(rep.accuracy) && rep.accuracy >= 0 && rep.accuracy <= 1);
    assert.equal(rep.wrong.length, rep.rows - Math.round(rep.accuracy * rep.rows));
    assert.ok(rep.wrong.length >= 3, 'noise answers are wrong');
    for (const w of rep.wrong) {
      assert.equal(typeof w.prediction, 'string');
      assert.ok(w.line !== 3 && w.references.length === 1);
    }
    assert.deepEqual(rep.skipped.map((s) => s.line), [3]);
    assert.match(rep.skipped[0]!.reason, /missing\.png does not exist/);
    assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')), rep);
    assert.deepEqual(readdirSync(dirname(out)), ['report.json'], 'no temporary file left');
  });

  it('the summary has the per-category table; --max-rows limits the rows', async () => {
    const r = await vlmkit(['eval', '--model', MODEL, '--data', DATA, '--max-rows', '2', '--max-new-tokens', '2', '--metric', 'anls']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^anls on .*test\.jsonl: 2 rows, accuracy/);
    assert.match(r.stdout, /category\s+rows\s+score\s+accuracy/);
    assert.match(r.stdout, /\n  colour\s+1 /);
    assert.match(r.stdout, /\n  count\s+1 /);
  });

  it('--adapter loads a LoRA adapter onto the model (its answers change)', async () => {
    const base = join(ROOT, 'test', 'fixtures', 'reference', 'tiny-idefics3');
    const lora = join(ROOT, 'test', 'fixtures', 'reference', 'tiny-idefics3-lora');
    const args = ['eval', '--model', base, '--data', DATA, '--max-rows', '2', '--max-new-tokens', '4', '--json'];
    const plain = await vlmkit(args);
    const adapted = await vlmkit([...args, '--adapter', lora]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(adapted.code, 0, adapted.stderr);
    const p = JSON.parse(plain.stdout) as { adapter: string | null; wrong: { prediction: string }[] };
    const a = JSON.parse(adapted.stdout) as { adapter: string | null; wrong: { prediction: string }[] };
    assert.equal(p.adapter, null);
    assert.equal(a.adapter, lora);
    assert.notDeepEqual(a.wrong.map((w) => w.prediction), p.wrong.map((w) => w.prediction));
  });

  it('--baseline sets an earlier report beside this one, per category, and refuses one of other rows or metric', async () => {
    const before = join(tmp, 'before.json');
    const args = ['eval', '--model', MODEL, '--data', DATA, '--max-rows', '2', '--max-new-tokens', '2'];
    assert.equal((await vlmkit([...args, '--out', before])).code, 0);
    const b = JSON.parse(readFileSync(before, 'utf8')) as { accuracy: number; score: number; per_category: Record<string, { accuracy: number }> };
    // a baseline whose figures differ from this run's, so that the change shown is not always 0
    writeFileSync(before, JSON.stringify({ ...b, accuracy: 0.5, per_category: { ...b.per_category, count: { ...b.per_category.count!, accuracy: 1 } } }));
    const j = await vlmkit([...args, '--baseline', before, '--json']);
    assert.equal(j.code, 0, j.stderr);
    const rep = JSON.parse(j.stdout) as { accuracy: number; baseline: { report: string; accuracy: number; score: number; per_category: Record<string, { accuracy: number }> } };
    assert.equal(rep.baseline.report, before);
    assert.equal(rep.baseline.accuracy, 0.5);
    assert.equal(rep.baseline.score, b.score);
    assert.equal(rep.baseline.per_category.count!.accuracy, 1);
    const t = await vlmkit([...args, '--baseline', before]);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /category\s+rows\s+score\s+accuracy\s+baseline\s+change/);
    assert.equal(rep.accuracy, 0, 'the tiny model\'s noise answers are wrong');
    assert.match(t.stdout, /\n  count\s+1\s+\S+\s+0\.0%\s+100\.0%\s+-100\.0\n/);
    assert.match(t.stdout, /\n  all\s+2\s+\S+\s+0\.0%\s+50\.0%\s+-50\.0 /);
    // another metric, other rows, not a report: one-line errors before the model loads
    const m = await vlmkit([...args, '--metric', 'anls', '--baseline', before]);
    assert.match(m.stderr, /^vlmkit: --baseline: .*before\.json scored --metric exact, this run --metric anls; compare reports of the same metric\n$/);
    const r = await vlmkit(['eval', '--model', MODEL, '--data', DATA, '--max-rows', '1', '--max-new-tokens', '2', '--baseline', before]);
    assert.match(r.stderr, /^vlmkit: --baseline: .*before\.json scored 2 rows, this run 1; compare reports of the same rows/);
    const bad = join(tmp, 'bad.json');
    writeFileSync(bad, '{"score": 1}');
    const n = await vlmkit([...args, '--baseline', bad]);
    assert.match(n.stderr, /^vlmkit: --baseline: .*bad\.json is not a report of vlmkit eval/);
  });

  it('bad flags are one-line errors', async () => {
    const m = await vlmkit(['eval', '--model', MODEL, '--data', DATA, '--metric', 'bleu']);
    assert.equal(m.code, 1);
    assert.match(m.stderr, /^vlmkit: --metric takes one of exact, relaxed, vqa, anls, iou; got "bleu"\n$/);
    const b = await vlmkit(['eval', '--model', MODEL, '--data', DATA, '--batch-size', '0']);
    assert.match(b.stderr, /^vlmkit: --batch-size takes a whole number >= 1, got "0"\n$/);
    const d = await vlmkit(['eval', '--model', MODEL, '--data', join(tmp, 'nope.jsonl')]);
    assert.match(d.stderr, /^vlmkit: --data .*nope\.jsonl does not exist/);
  });
});

describe('vlmkit ask --json boxes and --draw', () => {
  it('prints boxes and writes the image with them as a PNG', async () => {
    const out = join(tmp, 'drawn', 'out.png');
    const r = await vlmkit(['ask', '--model', MODEL, '--image', join(tmp, 'wide.png'), '--max-new-tokens', '4', '--json', '--draw', out, 'Where is the circle?']);
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout) as { text: string; raw_text: string; boxes: unknown[] };
    assert.ok(Array.isArray(o.boxes));
    assert.equal(typeof o.text, 'string');
    assert.equal(typeof o.raw_text, 'string');
    assert.ok(existsSync(out));
    const img = await loadImage(out);
    const src = await loadImage(join(tmp, 'wide.png'));
    assert.deepEqual([img.width, img.height], [src.width, src.height]);
  });

  it('--draw without an image is a clear error', async () => {
    const r = await vlmkit(['ask', '--model', MODEL, '--draw', join(tmp, 'x.png'), 'hi']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^vlmkit: --draw .*x\.png needs an --image/);
  });
});
