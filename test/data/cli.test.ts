// `vlmkit data`: writes what its summary says, refuses bad input with one line naming the flag.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { run } from '../../src/cli/main.js';
import { Tokenizer } from '../../src/processing/tokenizer.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-datacli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function vlmkit(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '', err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const code = await run(args, { stdout, stderr, stdin: new PassThrough() });
  return { code, stdout: out, stderr: err };
}

describe('vlmkit data', () => {
  it('shapes --json: the summary matches the files', async () => {
    const out = join(tmp, 'shapes');
    const r = await vlmkit(['data', 'shapes', '--n', '10', '--seed', '4', '--questions', '2', '--out', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'dataset.json'), 'utf8')).splits, s.splits);
    for (const [split, v] of Object.entries(s.splits) as [string, { images: number; rows: number }][]) {
      const rows = readFileSync(join(out, `${split}.jsonl`), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
      assert.equal(rows.length, v.rows);
      assert.equal(new Set(rows.map((x) => x.images[0])).size, v.images);
      for (const row of rows) assert.ok(existsSync(join(out, row.images[0])));
    }
    assert.equal(s.splits.train.images + s.splits.validation.images + s.splits.test.images, 10);
  });

  it('--weights changes how often each type is asked, is recorded, and at 1 changes nothing', async () => {
    const make = async (name: string, extra: string[]) => {
      const r = await vlmkit(['data', 'shapes', '--n', '60', '--seed', '7', '--questions', '3', '--split', '1,0,0', '--out', join(tmp, name), '--json', ...extra]);
      assert.equal(r.code, 0, r.stderr);
      return { summary: JSON.parse(r.stdout), jsonl: readFileSync(join(tmp, name, 'train.jsonl'), 'utf8') };
    };
    const plain = await make('w-plain', []);
    const ones = await make('w-ones', ['--weights', 'grounding=1,size=1']);
    assert.equal(ones.jsonl, plain.jsonl, 'factors of 1 must draw the very questions of no --weights');
    assert.equal(plain.summary.question_weights, undefined);
    const more = await make('w-more', ['--weights', 'grounding=20,size=0']);
    assert.deepEqual(more.summary.question_weights, { grounding: 20, size: 0 });
    assert.equal(more.summary.categories.size ?? 0, 0, 'size=0 must never ask size');
    assert.ok(plain.summary.categories.size > 0);
    // an image has at most one grounding question, and most have an object named alone: nearly every image gets one
    assert.ok(more.summary.categories.grounding >= 50 && more.summary.categories.grounding > 2 * plain.summary.categories.grounding,
      `grounding ${plain.summary.categories.grounding} -> ${more.summary.categories.grounding} of 60 images`);
    assert.deepEqual(JSON.parse(readFileSync(join(tmp, 'w-more', 'dataset.json'), 'utf8')).question_weights, { grounding: 20, size: 0 });
  });

  it('--repeat asks up to N questions of a type per image, each about a different object, and is recorded', async () => {
    const make = async (name: string, extra: string[]) => {
      const r = await vlmkit(['data', 'shapes', '--n', '60', '--seed', '7', '--questions', '3', '--split', '1,0,0', '--conversation', '--out', join(tmp, name), '--json', ...extra]);
      assert.equal(r.code, 0, r.stderr);
      const rows = readFileSync(join(tmp, name, 'train.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
      return { summary: JSON.parse(r.stdout), rows, jsonl: readFileSync(join(tmp, name, 'train.jsonl'), 'utf8') };
    };
    const plain = await make('r-plain', []);
    const ones = await make('r-ones', ['--repeat', 'grounding=1']);
    assert.equal(ones.jsonl, plain.jsonl, 'a repeat of 1 must draw the very questions of no --repeat');
    assert.equal(plain.summary.question_repeat, undefined);
    const many = await make('r-many', ['--repeat', 'grounding=3', '--weights', 'grounding=50', '--questions', '5']);
    assert.deepEqual(many.summary.question_repeat, { grounding: 3 });
    assert.deepEqual(JSON.parse(readFileSync(join(tmp, 'r-many', 'dataset.json'), 'utf8')).question_repeat, { grounding: 3 });
    let several = 0;
    for (const row of many.rows) {
      const boxes = row.messages.filter((m: { role: string }) => m.role === 'assistant').map((m: { content: { text: string }[] }) => m.content[0]!.text).filter((t: string) => t.includes('<loc'));
      assert.ok(boxes.length <= 3, `at most 3 grounding questions an image, got ${boxes.length}`);
      assert.equal(new Set(boxes).size, boxes.length, `each grounding question of an image finds a different object: ${boxes.join(' | ')}`);
      if (boxes.length > 1) several++;
    }
    assert.ok(several >= 20, `most pictures with several objects named alone get several grounding questions: ${several} of 60`);
  });

  it('charts and tokenizer write their files', async () => {
    const r = await vlmkit(['data', 'charts', '--n', '3', '--split', '1,0,0', '--out', join(tmp, 'charts')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /wrote charts dataset .* train 3 images/);
    const t = await vlmkit(['data', 'tokenizer', '--out', join(tmp, 'tok'), '--json']);
    assert.equal(t.code, 0, t.stderr);
    const tok = Tokenizer.fromDir(join(tmp, 'tok'));
    assert.equal(tok.vocabSize, JSON.parse(t.stdout).vocab_size);
    assert.ok(existsSync(join(tmp, 'tok', 'chat_template.jinja')));
  });

  const bad: [string[], RegExp][] = [
    [['data', 'shapes', '--out', 'x'], /--n N is required/],
    [['data', 'shapes', '--n', 'ten', '--out', 'x'], /--n takes a whole number/],
    [['data', 'circles', '--n', '3', '--out', 'x'], /shapes\|charts\|objects\|motion\|tokenizer/],
    [['data', 'shapes', '--n', '3'], /--out <dir> is required/],
    [['data', 'charts', '--n', '3', '--size', '100', '--out', join(tmp, 'c2')], /--size for charts takes 224/],
    [['data', 'shapes', '--n', '3', '--split', '0.5,0.5', '--out', join(tmp, 's2')], /--split takes three fractions/],
    [['data', 'shapes', '--n', '3', '--questions', '99', '--out', join(tmp, 's3')], /--questions takes 1 to 10/],
    [['data', 'shapes', '--n', '3', '--questions', '12', '--weights', 'order=1', '--out', join(tmp, 's3')], /--questions takes 1 to 11/],
    [['data', 'shapes', '--n', '3', '--weights', 'grounding', '--out', join(tmp, 's4')], /--weights takes type=factor pairs/],
    [['data', 'shapes', '--n', '3', '--weights', 'grounding=x', '--out', join(tmp, 's4')], /--weights takes type=factor pairs/],
    [['data', 'shapes', '--n', '3', '--weights', 'size=1,size=2', '--out', join(tmp, 's4')], /names size twice/],
    [['data', 'shapes', '--n', '3', '--weights', 'value=2', '--out', join(tmp, 's4')], /shapes has no question type "value"; its types are caption, /],
    [['data', 'shapes', '--n', '3', '--weights', 'size=-1', '--out', join(tmp, 's4')], /size takes a factor >= 0/],
    [['data', 'charts', '--n', '3', '--weights', 'caption=0,chart_type=0,title=0,value=0,compare=0,max_min=0,difference=0', '--out', join(tmp, 's4')], /every question type of charts is at 0/],
    [['data', 'motion', '--n', '3', '--weights', 'size=2', '--out', join(tmp, 's4')], /--weights is for the question datasets/],
    [['data', 'shapes', '--n', '3', '--repeat', 'grounding=0', '--out', join(tmp, 's4')], /--repeat: grounding takes a whole number of questions a picture, 1 to 10/],
    [['data', 'shapes', '--n', '3', '--repeat', 'grounding=1.5', '--out', join(tmp, 's4')], /--repeat: grounding takes a whole number/],
    [['data', 'shapes', '--n', '3', '--repeat', 'where=2', '--out', join(tmp, 's4')], /--repeat: shapes has no question type "where"/],
    [['data', 'shapes', '--n', '3', '--repeat', 'grounding=2', '--questions', '12', '--out', join(tmp, 's4')], /--questions takes 1 to 11 \(one per question type, --repeat times\)/],
    [['data', 'objects', '--n', '3', '--repeat', 'grounding=2', '--out', join(tmp, 's4')], /--repeat is for the question datasets/],
  ];
  for (const [args, re] of bad) {
    it(`refuses ${args.slice(1).join(' ')} with one line`, async () => {
      const r = await vlmkit(args);
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, re);
    });
  }
});
