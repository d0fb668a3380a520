// Dataset files: same seed -> identical bytes; splits from disjoint streams; rows in the form the SFT trainer
// loads; a failing run leaves nothing behind; charts answers consistent with the chart.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { askChart, chartsGenerator, randomChart } from '../../src/data/charts.js';
import { canDraw, textWidth } from '../../src/data/font.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { PNG } from 'pngjs';
import { encodePng, writeDataset, type DatasetOptions } from '../../src/data/dataset.js';
import { Rng } from '../../src/data/rng.js';
import { shapesGenerator } from '../../src/data/shapes.js';
import type { Generator } from '../../src/data/types.js';
import { Processor } from '../../src/models/index.js';
import { SftDataset } from '../../src/train/data.js';

const REF = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-gen-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const opts: DatasetOptions = { n: 20, seed: 7, size: 96, questions: 3, split: [0.6, 0.2, 0.2] };

function hashes(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string, rel: string) => {
    for (const name of readdirSync(d, { withFileTypes: true })) {
      if (name.isDirectory()) walk(join(d, name.name), join(rel, name.name));
      else out.set(join(rel, name.name), createHash('sha256').update(readFileSync(join(d, name.name))).digest('hex'));
    }
  };
  walk(dir, '');
  return out;
}

describe('dataset writer', () => {
  it('writes the same bytes for the same seed, other bytes for another seed', () => {
    const a = writeDataset(shapesGenerator, join(tmp, 'a'), opts);
    writeDataset(shapesGenerator, join(tmp, 'b'), opts);
    const c = writeDataset(shapesGenerator, join(tmp, 'c'), { ...opts, seed: 8 });
    const ha = hashes(join(tmp, 'a'));
    assert.equal(ha.size, 20 + 4, 'images + 3 JSONL + dataset.json');
    assert.deepEqual(hashes(join(tmp, 'b')), ha);
    assert.notEqual(c.splits.train.pixels_sha256, a.splits.train.pixels_sha256);
    assert.deepEqual([a.splits.train.images, a.splits.validation.images, a.splits.test.images], [12, 4, 4]);
    const rows = readFileSync(join(tmp, 'a', 'train.jsonl'), 'utf8').trim().split('\n');
    assert.equal(rows.length, a.splits.train.rows);
    assert.equal(a.splits.train.rows, 12 * 3);
  });

  it('draws the splits from disjoint streams, and the first images do not depend on n', () => {
    const big = writeDataset(shapesGenerator, join(tmp, 'big'), { ...opts, n: 40, split: [0.5, 0.25, 0.25] });
    assert.equal(big.splits.train.images, 20);
    const h = hashes(join(tmp, 'big'));
    const small = hashes(join(tmp, 'a'));
    for (const name of ['images/train-000000.png', 'images/validation-000003.png', 'images/test-000001.png']) assert.equal(h.get(name), small.get(name), name);
    const images = [...h].filter(([k]) => k.startsWith('images'));
    assert.equal(new Set(images.map(([, v]) => v)).size, images.length, 'an image repeats across or within splits');
  });

  it('rows load in the SFT trainer (TRL conversational form, images relative to the file)', async () => {
    const proc = Processor.fromDir(join(REF, 'tiny-smolvlm'));
    for (const split of ['train', 'validation']) {
      const ds = await SftDataset.load(join(tmp, 'a', `${split}.jsonl`), proc);
      assert.equal(ds.skipped.length, 0);
      assert.ok(ds.length > 0);
      assert.equal(ds.examples[0]!.images.length, 1);
      assert.ok(existsSync(ds.examples[0]!.images[0]!));
    }
    const row = JSON.parse(readFileSync(join(tmp, 'a', 'train.jsonl'), 'utf8').split('\n')[0]!);
    assert.deepEqual(Object.keys(row).slice(0, 4), ['messages', 'images', 'category', 'answer']);
    assert.equal(row.messages[1].content[0].text, row.answer);
  });

  it('leaves no folder and no temporary files when generation fails', () => {
    let calls = 0;
    const broken: Generator = {
      ...shapesGenerator,
      generate(rng, size, q) {
        if (++calls === 5) throw new Error('boom');
        return shapesGenerator.generate(rng, size, q);
      },
    };
    const out = join(tmp, 'broken');
    assert.throws(() => writeDataset(broken, out, opts), /boom/);
    assert.equal(existsSync(out), false);
    assert.deepEqual(readdirSync(tmp).filter((n) => n.includes('broken')), []);
  });

  it('encodes PNGs that decode to the canvas, without keeping memory per image', () => {
    const { canvas } = shapesGenerator.generate(new Rng(11), 128, 1);
    const back = PNG.sync.read(encodePng(canvas));
    const rgb = Buffer.alloc(128 * 128 * 3);
    for (let p = 0; p < 128 * 128; p++) back.data.copy(rgb, p * 3, p * 4, p * 4 + 3);
    assert.ok(rgb.equals(Buffer.from(canvas.data)));
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 1000; i++) encodePng(canvas);
    gc();
    const grown = (process.memoryUsage().arrayBuffers - before) / 1e6;
    assert.ok(Number.isFinite(grown) && grown < 30, `${grown.toFixed(0)} MB still held after 1000 images`);
  });

  it('refuses a non-empty --out without force, and bad options with the flag named', () => {
    assert.throws(() => writeDataset(shapesGenerator, join(tmp, 'a'), opts), /--out .* not empty.*--force/);
    assert.throws(() => writeDataset(shapesGenerator, join(tmp, 'x'), { ...opts, size: 10 }), /--size for shapes takes 64 to 1024/);
    assert.throws(() => writeDataset(shapesGenerator, join(tmp, 'x'), { ...opts, split: [0.5, 0.5, 0.5] }), /--split/);
    assert.throws(() => writeDataset(chartsGenerator, join(tmp, 'x'), { ...opts, n: 0 }), /--n/);
  });
});

describe('charts', () => {
  it('has drawable labels that fit, distinct values, and answers that follow from the values', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const rng = new Rng(i);
      const chart = randomChart(rng);
      const { labels, values } = chart;
      assert.ok(canDraw(chart.title) && labels.every((l) => canDraw(l)), chart.title);
      assert.equal(new Set(values).size, values.length);
      // the narrowest layout: 224 px (the smallest --size), n slots between 6 px margins, 2 px apart at least
      const slot = (224 - 12) / labels.length;
      assert.ok(labels.every((l) => textWidth(l, 1) <= slot - 2), labels.join(','));
      if (chart.kind === 'pie') assert.equal(values.reduce((a, b) => a + b, 0), 100);
      const at = (l: string) => values[labels.indexOf(l)]!;
      for (const qa of askChart(chart, rng, 7)) {
        seen.add(qa.category);
        const named = labels.filter((l) => new RegExp(`\\b${l}\\b`).test(qa.question));
        if (qa.category === 'value') assert.equal(qa.answer, String(at(named[0]!)));
        if (qa.category === 'max_min') assert.equal(at(qa.answer), (/highest|largest/.test(qa.question) ? Math.max : Math.min)(...values));
        if (qa.category === 'difference') assert.equal(Number(qa.answer), Math.abs(at(named[0]!) - at(named[1]!)));
        if (qa.category === 'chart_type') assert.equal(qa.answer, chart.kind);
        if (qa.category === 'title') assert.equal(qa.answer, chart.title);
      }
    }
    for (const c of chartsGenerator.categories) assert.ok(seen.has(c), c);
  });

  it('renders deterministically', () => {
    const a = chartsGenerator.generate(new Rng(3), 256, 3);
    const b = chartsGenerator.generate(new Rng(3), 256, 3);
    assert.deepEqual(a.canvas.data, b.canvas.data);
    assert.deepEqual(a.qas, b.qas);
  });
});
