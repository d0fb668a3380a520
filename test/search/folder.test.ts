// Folder search with the tiny CLIP fixture: the index is updated incrementally (the embeddings computed are
// counted: unchanged images are never embedded again), its rows equal fresh embeddings, another model's index is
// refused, and `vlmkit search` prints the same ranking as text and JSON.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { type ContrastiveHandle, loadContrastive } from '../../src/contrastive-api.js';
import { FileFormatError, VlmkitError } from '../../src/errors.js';
import { DEFAULT_INDEX_NAME, searchFolder, updateIndex } from '../../src/search/folder.js';
import { SearchIndex } from '../../src/search/index-file.js';
import { search } from '../../src/cli/search.js';
import { ROOT, vlmkit } from '../e2e/spawn-cli.js';

const REF = join(ROOT, 'test', 'fixtures', 'reference');
const IMAGES = join(REF, 'images');

/** The handle with embedImages wrapped to count the images it embeds. */
function counting(h: ContrastiveHandle): ContrastiveHandle & { embeddedImages: number } {
  const c = Object.create(h) as ContrastiveHandle & { embeddedImages: number };
  c.embeddedImages = 0;
  c.embedImages = async (imgs, o) => {
    c.embeddedImages += imgs.length;
    return h.embedImages(imgs, o);
  };
  return c;
}

describe('search over a folder', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-search-'));
  const dir = join(tmp, 'photos');
  let clip: ContrastiveHandle;
  before(() => {
    clip = loadContrastive(join(REF, 'tiny-clip'));
    mkdirSync(join(dir, 'sub'), { recursive: true });
    for (const f of ['square_64x64.png', 'wide_90x150.png', 'small_20x24.png']) copyFileSync(join(IMAGES, f), join(dir, f));
    copyFileSync(join(IMAGES, 'tall_200x70.png'), join(dir, 'sub', 'tall.png'));
    writeFileSync(join(dir, 'notes.txt'), 'not an image');
    copyFileSync(join(IMAGES, 'gray_33x47.png'), join(dir, '.hidden.png'));
  });
  after(() => {
    clip.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  /** the index's rows must be the model's embeddings of the files now in the folder (to the rounding of another
   * batch size: the GEMMs may take other kernels) */
  async function checkRows(ix: SearchIndex): Promise<void> {
    const fresh = await clip.embedImages(ix.files.map((f) => join(dir, f.path)));
    ix.files.forEach((f, i) => {
      const row = ix.row(i);
      assert.equal(row.length, fresh[i]!.length);
      const err = row.reduce((a, v, j) => Math.max(a, Math.abs(v - fresh[i]![j]!)), 0);
      assert.ok(Number.isFinite(err) && err <= 1e-5, `${f.path}: max difference ${err}`);
    });
  }

  it('first search embeds every image; a second embeds none and leaves the file alone', async () => {
    const c = counting(clip);
    const a = await updateIndex(c, dir);
    assert.equal(c.embeddedImages, 4);
    assert.deepEqual(a.index.files.map((f) => f.path), ['small_20x24.png', 'square_64x64.png', 'sub/tall.png', 'wide_90x150.png']);
    assert.deepEqual({ embedded: a.stats.embedded, kept: a.stats.kept, dropped: a.stats.dropped }, { embedded: 4, kept: 0, dropped: 0 });
    assert.equal(a.stats.indexPath, join(dir, DEFAULT_INDEX_NAME));
    await checkRows(SearchIndex.read(a.stats.indexPath));
    const bytes = readFileSync(a.stats.indexPath);
    const c2 = counting(clip);
    const b = await updateIndex(c2, dir);
    assert.equal(c2.embeddedImages, 0);
    assert.deepEqual({ embedded: b.stats.embedded, kept: b.stats.kept, dropped: b.stats.dropped }, { embedded: 0, kept: 4, dropped: 0 });
    assert.deepEqual(readFileSync(a.stats.indexPath), bytes);
  });

  it('a new, a changed, a touched and a deleted image: exactly three embedded, one dropped, the rest kept', async () => {
    copyFileSync(join(IMAGES, 'big_300x410.png'), join(dir, 'sub', 'new.png'));
    // changed content under the same name (and a later mtime)
    copyFileSync(join(IMAGES, 'rgba_40x52.png'), join(dir, 'square_64x64.png'));
    utimesSync(join(dir, 'square_64x64.png'), new Date(), new Date(Date.now() + 5000));
    // the same bytes, a new mtime: the size alone cannot tell, so it is embedded again
    utimesSync(join(dir, 'small_20x24.png'), new Date(), new Date(Date.now() + 7000));
    unlinkSync(join(dir, 'wide_90x150.png'));
    const c = counting(clip);
    const r = await updateIndex(c, dir);
    assert.equal(c.embeddedImages, 3);
    assert.deepEqual({ embedded: r.stats.embedded, kept: r.stats.kept, dropped: r.stats.dropped }, { embedded: 3, kept: 1, dropped: 1 });
    const back = SearchIndex.read(r.stats.indexPath);
    assert.deepEqual(back.files.map((f) => f.path), ['small_20x24.png', 'square_64x64.png', 'sub/new.png', 'sub/tall.png']);
    await checkRows(back);
  });

  it('searchFolder ranks by the cosine of the text and image embeddings', async () => {
    const { hits } = await searchFolder(clip, 'red circle', dir, { top: 3 });
    const [q] = clip.embedTexts(['red circle']);
    const ix = SearchIndex.read(join(dir, DEFAULT_INDEX_NAME));
    const want = ix.files.map((f, i) => ({ path: f.path, score: ix.row(i).reduce((a, v, j) => a + v * q![j]!, 0) }))
      .sort((a, b) => b.score - a.score).slice(0, 3);
    assert.deepEqual(hits.map((h) => h.path), want.map((h) => h.path));
    hits.forEach((h, i) => assert.ok(Number.isFinite(h.score) && Math.abs(h.score - want[i]!.score) <= 1e-5));
  });

  it("another model's index is refused naming the file and --rebuild; --rebuild replaces it", async () => {
    const siglip = loadContrastive(join(REF, 'tiny-siglip'));
    try {
      await assert.rejects(updateIndex(siglip, dir), (e: unknown) => e instanceof VlmkitError && e.code === 'E_INDEX' && e.message.includes(join(dir, DEFAULT_INDEX_NAME)) && /another model.*--rebuild/.test(e.message));
      const other = join(tmp, 'siglip.idx');
      const r = await updateIndex(siglip, dir, { index: other });
      assert.equal(r.stats.embedded, 4);
      const c = counting(clip);
      await assert.rejects(updateIndex(c, dir, { index: other }), /another model/);
      const rb = await updateIndex(c, dir, { index: other, rebuild: true });
      assert.equal(c.embeddedImages, 4);
      assert.equal(SearchIndex.read(other).model.id, rb.index.model.id);
    } finally {
      siglip.dispose();
    }
  });

  it('a damaged index is a FileFormatError naming it; an unreadable image is left out and reported', async () => {
    const bad = join(tmp, 'bad.idx');
    writeFileSync(bad, 'VLMKSIDX garbage');
    await assert.rejects(updateIndex(clip, dir, { index: bad }), (e: unknown) => e instanceof FileFormatError && e.message.includes(bad) && /--rebuild/.test(e.message));
    writeFileSync(join(dir, 'broken.jpg'), 'not a jpeg');
    const r = await updateIndex(clip, dir, { index: join(tmp, 'b2.idx') });
    assert.deepEqual(r.stats.skipped.map((s) => s.path), ['broken.jpg']);
    assert.ok(!r.index.files.some((f) => f.path === 'broken.jpg'));
    unlinkSync(join(dir, 'broken.jpg'));
  });

  it('vlmkit search: text and --json give the same ranking; bad arguments are one-line errors', async () => {
    const idx = join(tmp, 'cli.idx');
    const text = await vlmkit(['search', '--model', join(REF, 'tiny-clip'), 'red circle', dir, '--top', '2', '--index', idx]);
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.trim().split('\n');
    assert.equal(lines.length, 2);
    for (const l of lines) assert.match(l, /^-?\d\.\d{4} {2}\S/);
    const js = await vlmkit(['search', '--model', join(REF, 'tiny-clip'), 'red circle', dir, '--top', '2', '--index', idx, '--json']);
    assert.equal(js.code, 0, js.stderr);
    const o = JSON.parse(js.stdout) as { results: { path: string; score: number }[]; embedded: number; kept: number; index: string };
    assert.equal(o.embedded, 0, 'the first run indexed the folder');
    assert.equal(o.kept, 4);
    assert.equal(o.index, idx);
    assert.deepEqual(lines, o.results.map((r) => `${r.score.toFixed(4)}  ${r.path}`));
    assert.ok(o.results.every((r) => r.path.startsWith(dir)));
    const io = { stdout: new PassThrough(), stderr: new PassThrough(), stdin: new PassThrough() };
    for (const [args, re] of [
      [['red circle'], /give the text and the folder/],
      [['', dir], /search text is empty/],
      [['red', dir, '--top', '0'], /--top takes an integer >= 1/],
      [['red', join(tmp, 'nope')], /does not exist/],
      [['red', join(tmp, 'cli.idx')], /is not a folder/],
    ] as const) await assert.rejects(search(['--model', join(REF, 'tiny-clip'), ...args], io), (e: unknown) => e instanceof VlmkitError && re.test(e.message), String(re));
    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    const r = await vlmkit(['search', '--model', join(REF, 'tiny-clip'), 'red', empty]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^vlmkit: no images .* under .*empty/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });
});
