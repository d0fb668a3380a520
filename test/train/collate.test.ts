// The SFT collator against the reference fixture idefics3_lora_sft_step: the same two conversations, written as a
// JSONL dataset, give exactly transformers' input_ids, attention_mask, pixel_attention_mask, `labels` (pad and
// <image> -> -100) and, assistant-only, `labels_completion`; pixel values within the fixture tolerance.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ParityCase } from '../../src/parity/case.js';
import { Processor } from '../../src/models/idefics3/processor.js';
import { IGNORE_INDEX, SftCollator, countTargets, encodeConversation, imageBlockEnd } from '../../src/train/collate.js';
import { SftDataset, loadExampleImages } from '../../src/train/data.js';
import { hostInts } from '../../src/models/common.js';

const REF = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
const MODEL = join(REF, 'tiny-idefics3');
const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-collate-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
copyFileSync(join(REF, 'images', 'wide_90x150.png'), join(tmp, 'wide.png'));
copyFileSync(join(REF, 'images', 'square_64x64.png'), join(tmp, 'square.png'));

const proc = Processor.fromDir(MODEL);
const ref = ParityCase.open(join(REF, 'cases', 'idefics3_lora_sft_step.safetensors'));
after(() => ref.close());

const conv = (q: string, a: string) => [
  { role: 'user', content: [{ type: 'image' }, { type: 'text', text: q }] },
  { role: 'assistant', content: [{ type: 'text', text: a }] },
];
const ROWS = [
  { messages: conv('What is in this image?', 'There are 3 red circles in the image.'), images: ['wide.png'] },
  { messages: conv('How many shapes?', '4.'), images: ['square.png'] },
];

function writeJsonl(name: string, rows: unknown[]): string {
  const p = join(tmp, name);
  writeFileSync(p, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return p;
}

async function collated(file: string, assistantOnly: boolean) {
  const ds = await SftDataset.load(file, proc, { assistantOnly });
  const col = new SftCollator(proc, { assistantOnly });
  const imgs = await loadExampleImages(proc, ds.examples);
  return col.collate(ds.examples, imgs);
}

describe('SFT collator vs idefics3_lora_sft_step', () => {
  it('input ids, masks, labels (pad and <image> -> -100) and pixel values match', async () => {
    const b = await collated(writeJsonl('conv.jsonl', ROWS), false);
    try {
      assert.deepEqual(Array.from(b.ids), ref.ints('input_ids').values);
      assert.deepEqual(b.inputIds.shape, ref.ints('input_ids').shape);
      assert.deepEqual(Array.from(hostInts(b.attentionMask)), ref.ints('attention_mask').values);
      assert.deepEqual(Array.from(b.labels), ref.ints('labels').values);
      assert.deepEqual(Array.from(hostInts(b.pixelAttentionMask!)), ref.ints('pixel_attention_mask').values);
      const pv = ref.floats('pixel_values');
      assert.deepEqual(b.pixelValues!.shape, pv.shape);
      const got = b.pixelValues!.data as Float32Array;
      let max = 0, sum = 0;
      for (let i = 0; i < got.length; i++) { const d = Math.abs(got[i]! - pv.data[i]!); max = Math.max(max, d); sum += d; }
      assert.ok(max <= 0.02 && sum / got.length <= 1e-3, `pixel values max ${max} mean ${sum / got.length}`);
      const want = ref.ints('labels').values;
      const T = b.seqLen;
      let n = 0;
      for (let r = 0; r < 2; r++) n += countTargets(want.slice(r * T, (r + 1) * T));
      assert.equal(b.numTargets, n);
      // the tokens around the images stay targets, as in the fixture
      const fake = proc.tokenizer.specialIds.fakeTokenAroundImage!;
      assert.ok(Array.from(b.labels).includes(fake));
    } finally {
      b.dispose();
    }
  });

  it('assistant-only labels match labels_completion', async () => {
    const b = await collated(join(tmp, 'conv.jsonl'), true);
    try {
      assert.deepEqual(Array.from(b.labels), ref.ints('labels_completion').values);
    } finally {
      b.dispose();
    }
  });

  it('prompt/completion rows train on the completion only (TRL default) and give labels_completion', async () => {
    const pc = ROWS.map((r) => ({ prompt: [r.messages[0]], completion: [r.messages[1]], images: r.images }));
    const b = await collated(writeJsonl('pc.jsonl', pc), false);
    try {
      assert.deepEqual(Array.from(b.ids), ref.ints('input_ids').values);
      assert.deepEqual(Array.from(b.labels), ref.ints('labels_completion').values);
    } finally {
      b.dispose();
    }
  });

  it('string prompt/completion with images: images go first in the user turn', async () => {
    const pc = [
      { prompt: 'What is in this image?', completion: 'There are 3 red circles in the image.', images: ['wide.png'] },
      { prompt: 'How many shapes?', completion: '4.', images: ['square.png'] },
    ];
    const b = await collated(writeJsonl('pcs.jsonl', pc), false);
    try {
      assert.deepEqual(Array.from(b.ids), ref.ints('input_ids').values);
      assert.deepEqual(Array.from(b.labels), ref.ints('labels_completion').values);
    } finally {
      b.dispose();
    }
  });

  it('multi-turn: every assistant reply is a span, user turns are masked', () => {
    const msgs = [
      { role: 'user', content: [{ type: 'image' as const }, { type: 'text' as const, text: 'Color?' }] },
      { role: 'assistant', content: 'Red.' },
      { role: 'user', content: 'And the shape?' },
      { role: 'assistant', content: 'A circle.' },
    ];
    const enc = encodeConversation(proc.prompt, msgs, [{ rows: 0, cols: 0 }]);
    assert.equal(enc.assistantSpans.length, 2);
    const text = (s: [number, number]) => proc.tokenizer.decode(enc.inputIds.slice(s[0], s[1]), { skipSpecialTokens: false });
    assert.match(text(enc.assistantSpans[0]!), /^ ?Red\.<end_of_utterance>\n$/);
    assert.match(text(enc.assistantSpans[1]!), /^ ?A circle\.<end_of_utterance>\n$/);
    const col = new SftCollator(proc, { assistantOnly: true });
    const lab = col.labels(enc);
    const kept = lab.filter((x) => x !== IGNORE_INDEX).length;
    assert.equal(kept, enc.assistantSpans.reduce((a, [s, e]) => a + e - s, 0));
    assert.ok(imageBlockEnd(enc.inputIds, proc.tokenizer.specialIds.image!, proc.tokenizer.specialIds.fakeTokenAroundImage) > 0);
  });

  it('truncation keeps image blocks whole: cut after them, or a bad row naming file and line', async () => {
    const file = writeJsonl('long.jsonl', [ROWS[0]]);
    const full = (await SftDataset.load(file, proc)).examples[0]!;
    const end = imageBlockEnd(full.inputIds, proc.tokenizer.specialIds.image!, proc.tokenizer.specialIds.fakeTokenAroundImage);
    // a cut after the images: truncated, labels cut with it
    const cut = (await SftDataset.load(file, proc, { maxLength: end + 3 })).examples[0]!;
    assert.equal(cut.truncated, true);
    assert.equal(cut.length, end + 3);
    assert.deepEqual(cut.inputIds, full.inputIds.slice(0, end + 3));
    // a cut through the image block
    await assert.rejects(SftDataset.load(file, proc, { maxLength: end - 2 }), /long\.jsonl:1: too long: .*split an image/);
    const textOnly = { messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello.' }] };
    const skipped = await SftDataset.load(writeJsonl('long2.jsonl', [ROWS[0], textOnly]), proc, { maxLength: 40, skipBadRows: true });
    assert.equal(skipped.skipped.length, 1);
    assert.equal(skipped.skipped[0]!.line, 1);
    assert.equal(skipped.summary().used, 1);
    // assistant-only: a cut before the reply leaves nothing to train on
    await assert.rejects(SftDataset.load(file, proc, { maxLength: end + 3, assistantOnly: true }), /nothing|no assistant reply/);
    // truncation off
    await assert.rejects(SftDataset.load(file, proc, { maxLength: end + 3, truncate: false }), /truncation is off/);
  });
});
