// `vlmkit classify` and `vlmkit embed` with the tiny CLIP / SigLIP fixtures, as a user runs them, checked against
// the library computing the same scores step by step (the models themselves are checked against transformers in
// test/models/contrastive.test.ts), and their errors.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noGrad, sigmoid, softmax, tensor } from '../../src/engine/index.js';
import { loadContrastiveModel } from '../../src/models/index.js';
import { loadImage } from '../../src/processing/decode.js';
import { PassThrough } from 'node:stream';
import { VlmkitError } from '../../src/errors.js';
import { classify } from '../../src/cli/classify.js';
import { embed } from '../../src/cli/embed.js';
import { ROOT, vlmkit } from './spawn-cli.js';

const REF = join(ROOT, 'test', 'fixtures', 'reference');
const IMGS = [join(REF, 'images', 'square_64x64.png'), join(REF, 'images', 'wide_90x150.png')];
// first tokens differ, so the tiny CLIP (its tokenizer adds no EOS: pooled at position 0) tells them apart
const LABELS = ['red circle', 'blue square', 'three stars'];

/** probabilities [image][label] the long way: processor, towers, logits, softmax / sigmoid. */
async function expected(dir: string, texts: string[]): Promise<number[][]> {
  const { model, processor } = loadContrastiveModel(dir);
  try {
    const pv = processor.pixelValues(await Promise.all(IMGS.map((p) => loadImage(p))));
    const enc = processor.encodeTexts(texts);
    return noGrad(() => {
      const img = model.imageEmbeds(tensor(pv.data, pv.shape, { dtype: 'f32' }));
      const B = enc.ids.length, T = enc.ids[0]!.length;
      const txt = model.textEmbeds(tensor(enc.ids.flat(), [B, T], { dtype: 'i32' }), tensor(enc.mask.flat(), [B, T], { dtype: 'i32' }));
      const l = model.logitsPerImage(img, txt);
      const p = (model.scoring === 'softmax' ? softmax(l, -1) : sigmoid(l)).toFloat32Array();
      return IMGS.map((_, i) => texts.map((_, k) => p[i * texts.length + k]!));
    });
  } finally {
    model.dispose();
  }
}

for (const [family, dir] of [['clip', 'tiny-clip'], ['siglip', 'tiny-siglip']] as const) {
  describe(`vlmkit classify (${family})`, () => {
    it('--json: every label scored per image, best first, with the template applied', async () => {
      const r = await vlmkit(['classify', '--model', join(REF, dir), '--labels', LABELS.join(','), '--template', 'a {}', '--json', ...IMGS]);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { image: string; scores: { label: string; score: number }[] });
      assert.equal(lines.length, 2);
      const want = await expected(join(REF, dir), LABELS.map((l) => `a ${l}`));
      lines.forEach((line, i) => {
        assert.equal(line.image, IMGS[i]);
        assert.deepEqual(line.scores.map((s) => s.label).sort(), [...LABELS].sort());
        for (let k = 1; k < line.scores.length; k++) assert.ok(line.scores[k - 1]!.score >= line.scores[k]!.score, 'best first');
        for (const s of line.scores) {
          const w = want[i]![LABELS.indexOf(s.label)]!;
          assert.ok(Number.isFinite(s.score) && Math.abs(s.score - w) <= 1e-6, `${s.label}: ${s.score} vs ${w}`);
        }
        const total = line.scores.reduce((a, s) => a + s.score, 0);
        if (family === 'clip') assert.ok(Math.abs(total - 1) < 1e-5, `CLIP's scores sum to 1, got ${total}`);
      });
      // the template matters: without it the texts (and so the scores) differ
      const plain = await vlmkit(['classify', '--model', join(REF, dir), '--labels', LABELS.join(','), '--json', IMGS[0]!]);
      assert.notEqual(plain.stdout.trim(), r.stdout.trim().split('\n')[0]);
    });
  });
}

describe('vlmkit classify / embed: output and errors', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-embed-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('text output: the image, then one "score  label" line per label', async () => {
    const r = await vlmkit(['classify', '--model', join(REF, 'tiny-clip'), '--labels', 'red circle,blue square', '--top', '1', IMGS[0]!]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], IMGS[0]);
    assert.equal(lines.length, 2);
    assert.match(lines[1]!, /^ {2}\d\.\d{4} {2}(red circle|blue square)$/);
  });

  it('an empty label list is a one-line error with exit 1', async () => {
    const r = await vlmkit(['classify', '--model', join(REF, 'tiny-siglip'), '--labels', '', IMGS[0]!]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /label list is empty/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });

  it('an empty label, no images, a template without {}, no model: errors naming the input (in process)', async () => {
    const io = { stdout: new PassThrough(), stderr: new PassThrough(), stdin: new PassThrough() };
    for (const [args, re] of [
      [['--labels', 'a cat,,a dog', IMGS[0]!], /label 2 is empty/],
      [['--labels', 'a cat,a cat', IMGS[0]!], /given twice/],
      [['--labels', 'a cat'], /at least one image/],
      [['--labels', 'a cat', '--template', 'a photo', IMGS[0]!], /has no "\{\}"/],
      [['--labels', 'a cat', '--top', '0', IMGS[0]!], /--top takes an integer >= 1/],
    ] as const) await assert.rejects(classify(['--model', join(REF, 'tiny-siglip'), ...args], io), (e: unknown) => e instanceof VlmkitError && re.test(e.message));
    await assert.rejects(classify(['--labels', 'a', IMGS[0]!], io), /--model DIR is required/);
    await assert.rejects(embed(['--model', join(REF, 'tiny-clip')], io), /nothing to embed/);
  });

  it('a VLM checkpoint is refused by classify, naming what it takes', async () => {
    const r = await vlmkit(['classify', '--model', join(REF, 'tiny-idefics3'), '--labels', 'a', IMGS[0]!]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not a contrastive image-text model.*clip or siglip/);
  });

  it('embed: JSON lines of unit vectors, images then texts; --out writes the same lines to a file', async () => {
    const r = await vlmkit(['embed', '--model', join(REF, 'tiny-clip'), '--text', 'red circle', ...IMGS]);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; input: string; embedding: number[] });
    assert.deepEqual(rows.map((x) => [x.kind, x.input]), [['image', IMGS[0]], ['image', IMGS[1]], ['text', 'red circle']]);
    for (const x of rows) {
      assert.equal(x.embedding.length, 512);
      const n = Math.sqrt(x.embedding.reduce((a, v) => a + v * v, 0));
      assert.ok(Math.abs(n - 1) < 1e-5, `norm ${n}`);
    }
    const out = join(tmp, 'e.jsonl');
    const f = await vlmkit(['embed', '--model', join(REF, 'tiny-clip'), '--text', 'red circle', '--out', out, ...IMGS]);
    assert.equal(f.code, 0, f.stderr);
    assert.equal(readFileSync(out, 'utf8'), r.stdout);
    const bad = await vlmkit(['embed', '--model', join(REF, 'tiny-clip'), '--out', join(tmp, 'x.jsonl'), join(tmp, 'missing.png')]);
    assert.equal(bad.code, 1);
    assert.ok(!existsSync(join(tmp, 'x.jsonl')), 'nothing written on failure');
  });
});
