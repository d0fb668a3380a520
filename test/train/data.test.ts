// SFT datasets: both TRL forms, image paths relative to the file, bad rows (bad JSON, missing / unreadable image,
// no assistant turn, placeholder mismatch) as errors naming file:line or skipped and counted, and the seeded
// batch order (per-epoch shuffles, grouping by length).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Processor } from '../../src/models/idefics3/processor.js';
import { BatchOrder, SftDataset, loadExampleMedia } from '../../src/train/data.js';

const REF = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
const proc = Processor.fromDir(join(REF, 'tiny-idefics3'));
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-data-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
mkdirSync(join(tmp, 'img'));
copyFileSync(join(REF, 'images', 'wide_90x150.png'), join(tmp, 'img', 'wide.png'));
writeFileSync(join(tmp, 'img', 'broken.png'), 'this is not a png');

const good = { messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What?' }] }, { role: 'assistant', content: 'Circles.' }], images: ['img/wide.png'] };
const text = { messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello.' }] };

function jsonl(name: string, lines: (unknown | string)[]): string {
  const p = join(tmp, name);
  writeFileSync(p, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return p;
}

describe('SFT dataset', () => {
  it('loads both forms, resolves images relative to the file, skips blank lines', async () => {
    const f = jsonl('ok.jsonl', [good, '', text, { prompt: 'Say hi', completion: 'Hi.' }]);
    const ds = await SftDataset.load(f, proc);
    assert.equal(ds.length, 3);
    assert.deepEqual(ds.examples.map((e) => e.line), [1, 3, 4]);
    assert.equal(ds.examples[0]!.images[0], join(tmp, 'img', 'wide.png'));
    assert.equal(ds.examples[0]!.tiles, 13); // 3 x 4 tiles + the global image
    assert.deepEqual(ds.examples.map((e) => e.kind), ['messages', 'messages', 'prompt-completion']);
    assert.equal(ds.examples[2]!.completionOnly, true);
    // a string user content with images: the image goes first
    const s = await SftDataset.load(jsonl('str.jsonl', [{ messages: [{ role: 'user', content: 'What?' }, { role: 'assistant', content: 'Circles.' }], images: ['img/wide.png'] }]), proc);
    assert.deepEqual(s.examples[0]!.inputIds, ds.examples[0]!.inputIds);
  });

  const cases: [string, unknown, RegExp][] = [
    ['bad JSON', '{"messages": [', /bad\.jsonl:2: not valid JSON/],
    ['missing image', { ...good, images: ['img/nope.png'] }, /bad\.jsonl:2: .*nope\.png/],
    ['unreadable image', { ...good, images: ['img/broken.png'] }, /bad\.jsonl:2: .*broken\.png/],
    ['no assistant turn', { messages: [{ role: 'user', content: 'Hi' }] }, /bad\.jsonl:2: no assistant turn/],
    ['placeholder mismatch', { ...good, images: ['img/wide.png', 'img/wide.png'] }, /bad\.jsonl:2: .*1 image placeholder.* lists 2/],
    ['unknown role', { messages: [{ role: 'bot', content: 'x' }] }, /bad\.jsonl:2: .*role/],
    ['neither form', { text: 'hello' }, /bad\.jsonl:2: a row needs "messages"/],
  ];
  for (const [what, row, re] of cases) {
    it(`a row with ${what} is an error naming file and line`, async () => {
      const f = jsonl('bad.jsonl', [text, row]);
      await assert.rejects(SftDataset.load(f, proc), (e: Error) => {
        assert.match(e.message, re);
        assert.match(e.message, /--skip-bad-rows/);
        return true;
      });
    });
  }

  it('reads image sizes from the headers: the same grids as decoding every image; a bad body fails at its batch', async () => {
    // every decoder fixture (EXIF-rotated JPEGs and PNGs, GIFs, WebPs, CMYK): header path vs decoding
    const DEC = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'decode');
    const pics = readdirSync(DEC).filter((f) => /\.(jpg|png|gif|webp)$/.test(f) && !f.includes('.rgb.') && !f.includes('.white.'));
    assert.ok(pics.length >= 20, `only ${pics.length} decoder fixtures found`);
    const rows = pics.map((f) => ({ ...good, images: [join(DEC, f)] }));
    const f = jsonl('sizes.jsonl', rows);
    const fast = await SftDataset.load(f, proc, { skipBadRows: true });
    const decoded = await SftDataset.load(f, proc, { skipBadRows: true, loadImage: async (p) => (await proc.loadImages([p]))[0]! });
    assert.deepEqual(fast.skipped.map((s) => s.line), decoded.skipped.map((s) => s.line));
    assert.ok(fast.length >= 20);
    assert.deepEqual(fast.examples.map((e) => [e.line, e.grids]), decoded.examples.map((e) => [e.line, e.grids]));
    assert.deepEqual(fast.examples.map((e) => e.inputIds), decoded.examples.map((e) => e.inputIds));
    // a PNG whose header is whole and whose pixels are not: the row loads (its grid is known) ...
    const png = readFileSync(join(REF, 'images', 'wide_90x150.png'));
    writeFileSync(join(tmp, 'img', 'cut.png'), png.subarray(0, 60));
    const cut = await SftDataset.load(jsonl('cut.jsonl', [good, { ...good, images: ['img/cut.png'] }]), proc);
    assert.equal(cut.examples[1]!.tiles, 13);
    // ... and its batch stops with the row's file:line
    await assert.rejects(loadExampleMedia(proc, [cut.examples[1]!]), (e: Error) => /cut\.jsonl:2: .*cut\.png/.test(e.message));
  });

  it('reports its reading progress and stops between rows when asked (Ctrl-C during a long load)', async () => {
    const f = jsonl('many.jsonl', Array.from({ length: 250 }, () => text));
    const seen: [number, number][] = [];
    const ds = await SftDataset.load(f, proc, { onRow: (d, t) => seen.push([d, t]) });
    assert.equal(ds.length, 250);
    assert.deepEqual(seen, [[0, 250], [100, 250], [200, 250], [250, 250]]);
    let asked = 0;
    await assert.rejects(SftDataset.load(f, proc, { shouldStop: () => ++asked > 120 }), (e: Error & { code?: string }) => e.code === 'E_INTERRUPTED' && /many\.jsonl \(row 121\)/.test(e.message));
  });

  it('with skipBadRows, bad rows are skipped and counted', async () => {
    const f = jsonl('mixed.jsonl', [text, ...cases.map((c) => c[1]), good]);
    const ds = await SftDataset.load(f, proc, { skipBadRows: true });
    assert.equal(ds.length, 2);
    assert.equal(ds.skipped.length, cases.length);
    assert.deepEqual(ds.skipped.map((b) => b.line), cases.map((_, i) => i + 2));
    assert.deepEqual(ds.summary(), { file: f, rows: cases.length + 2, used: 2, skipped: cases.length, truncated: 0, tokens: ds.examples[0]!.length + ds.examples[1]!.length, tiles: 13 });
  });

  it('an empty file or a file of bad rows only is an error', async () => {
    await assert.rejects(SftDataset.load(jsonl('empty.jsonl', []), proc), /no usable rows .*empty/);
    await assert.rejects(SftDataset.load(jsonl('allbad.jsonl', [{ text: 1 }]), proc, { skipBadRows: true }), /no usable rows \(1 of 1 skipped/);
    await assert.rejects(SftDataset.load(join(tmp, 'missing.jsonl'), proc), /cannot read dataset .*missing\.jsonl/);
  });
});

describe('batch order', () => {
  const lengths = Array.from({ length: 23 }, (_, i) => (i * 37) % 101);
  it('is a seeded function of (seed, epoch) covering every row once', () => {
    const a = new BatchOrder(lengths, { batchSize: 4, seed: 7 });
    const b = new BatchOrder(lengths, { batchSize: 4, seed: 7 });
    assert.deepEqual(a.epoch(0), b.epoch(0));
    assert.deepEqual(a.epoch(3), b.epoch(3));
    assert.notDeepEqual(a.epoch(0), a.epoch(1));
    assert.notDeepEqual(a.epoch(0), new BatchOrder(lengths, { batchSize: 4, seed: 8 }).epoch(0));
    const e = a.epoch(2);
    assert.equal(e.length, 6);
    assert.equal(a.batchesPerEpoch, 6);
    assert.deepEqual(e.flat().sort((x, y) => x - y), lengths.map((_, i) => i));
    assert.equal(new BatchOrder(lengths, { batchSize: 4, seed: 7, dropLast: true }).epoch(0).length, 5);
    assert.deepEqual(new BatchOrder(lengths, { batchSize: 5, seed: 1, shuffle: false }).epoch(0)[0], [0, 1, 2, 3, 4]);
  });

  it('groups by length: sorted mega-batches, longest batch first', () => {
    const o = new BatchOrder(lengths, { batchSize: 3, seed: 1, groupByLength: true, groupSize: 2 });
    const batches = o.epoch(0);
    const maxLen = Math.max(...lengths);
    assert.ok(batches[0]!.some((i) => lengths[i] === maxLen));
    assert.deepEqual(batches.flat().sort((x, y) => x - y), lengths.map((_, i) => i));
    // inside a batch, lengths are close: each batch comes from one sorted mega-batch of 6
    for (const b of batches.slice(1)) {
      const ls = b.map((i) => lengths[i]!);
      assert.deepEqual(ls, ls.slice().sort((x, y) => y - x));
    }
  });
});
