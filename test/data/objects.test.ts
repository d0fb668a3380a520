// `vlmkit data objects`: one-object scenes whose rows are image-text pairs for contrastive training, every caption
// one of the 48 colour x shape labels, deterministic by seed.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDataset } from '../../src/data/dataset.js';
import { objectCaption, objectLabels, objectsGenerator } from '../../src/data/objects.js';

describe('objects dataset', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-objects-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('48 distinct labels with the right article', () => {
    const labels = objectLabels();
    assert.equal(labels.length, 48);
    assert.equal(new Set(labels).size, 48);
    assert.equal(objectCaption('orange', 'star'), 'an orange star');
    assert.ok(labels.includes('a red circle') && labels.includes('a brown hexagon'));
  });

  it('rows are {"image", "text"} pairs with a label as the caption, the same for the same seed', () => {
    const opts = { n: 60, seed: 4, size: 32, questions: 1, split: [0.5, 0.25, 0.25] as const };
    writeDataset(objectsGenerator, join(tmp, 'a'), opts);
    writeDataset(objectsGenerator, join(tmp, 'b'), opts);
    const rows = readFileSync(join(tmp, 'a', 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(rows.length, 30);
    const labels = new Set(objectLabels());
    for (const r of rows) {
      assert.deepEqual(Object.keys(r).sort(), ['image', 'text']);
      assert.ok(labels.has(r.text as string), JSON.stringify(r));
    }
    assert.ok(new Set(rows.map((r) => r.text)).size > 10, 'captions vary');
    assert.equal(readFileSync(join(tmp, 'b', 'train.jsonl'), 'utf8'), readFileSync(join(tmp, 'a', 'train.jsonl'), 'utf8'));
    const ds = JSON.parse(readFileSync(join(tmp, 'a', 'dataset.json'), 'utf8')) as { splits: Record<string, { pixels_sha256: string }> };
    const ds2 = JSON.parse(readFileSync(join(tmp, 'b', 'dataset.json'), 'utf8')) as typeof ds;
    assert.equal(ds.splits.train!.pixels_sha256, ds2.splits.train!.pixels_sha256);
  });
});
