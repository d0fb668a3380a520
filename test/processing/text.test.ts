// Tokenizer, chat template and prompt expansion against the reference fixtures (transformers 5.17 output).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, copyFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { VlmkitError } from '../../src/errors.js';
import { Tokenizer } from '../../src/processing/tokenizer.js';
import { ChatTemplate, findChatTemplate, loadChatTemplateSource, type ChatMessage } from '../../src/processing/chat-template.js';
import {
  PromptBuilder,
  buildPrompt,
  buildPromptBatch,
  batchToArrays,
  expandImagePrompt,
  expandVideoPrompt,
  formatDuration,
  imagePromptString,
  loadPromptConfig,
  numberToWords,
  padBatch,
  videoFrameTimestamps,
  type ImageGrid,
} from '../../src/models/idefics3/prompt.js';

const REF = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
const CASES = join(REF, 'cases');

type Json = Record<string, unknown>;
const caseJson = (name: string): Json => JSON.parse(readFileSync(join(CASES, name + '.json'), 'utf8')) as Json;

/** Reads an int64 tensor as rows of numbers. */
function readIntRows(caseName: string, tensor: string): number[][] {
  const f = SafetensorsFile.open(join(CASES, caseName + '.safetensors'));
  try {
    const t = f.read(tensor);
    assert.equal(t.dtype, 'I64');
    const flat = Array.from(t.data as BigInt64Array, Number);
    const cols = t.shape[t.shape.length - 1]!;
    const rows: number[][] = [];
    for (let i = 0; i < flat.length; i += cols) rows.push(flat.slice(i, i + cols));
    return rows;
  } finally {
    f.close();
  }
}

/**
 * The split grid of every image in an expanded prompt, in order: the `<row_R_col_C>` tokens before each
 * `<global-img>` give rows x cols; a `<global-img>` with none before it is an unsplit image (0 x 0).
 */
function gridsFromExpanded(text: string): ImageGrid[] {
  const grids: ImageGrid[] = [];
  let rows = 0;
  let cols = 0;
  for (const m of text.matchAll(/<row_(\d+)_col_(\d+)>|<global-img>/g)) {
    if (m[0] === '<global-img>') {
      grids.push({ rows, cols });
      rows = cols = 0;
    } else {
      rows = Math.max(rows, Number(m[1]));
      cols = Math.max(cols, Number(m[2]));
    }
  }
  return grids;
}

// The conversations refgen.py rendered (its conv() helper): n image parts then the question, optionally an answer.
function conv(nImages: number, question: string, answer?: string): ChatMessage[] {
  const content: ChatMessage['content'] = [];
  for (let i = 0; i < nImages; i++) content.push({ type: 'image' });
  content.push({ type: 'text', text: question });
  const msgs: ChatMessage[] = [{ role: 'user', content }];
  if (answer !== undefined) msgs.push({ role: 'assistant', content: [{ type: 'text', text: answer }] });
  return msgs;
}
const VIDEO_MSGS: ChatMessage[] = [
  { role: 'user', content: [{ type: 'video' }, { type: 'text', text: 'What happens in this video?' }] },
];

interface Sample {
  messages: ChatMessage[];
  addGenerationPrompt: boolean;
  /** the rendered prompt the json stores for it */
  rendered: string;
}
/** Which conversation produced each prompt-carrying case (everything but the image-free contrastive texts). */
function samplesOf(name: string, j: Json): Sample[] | null {
  const gen = (messages: ChatMessage[], rendered: unknown): Sample => ({ messages, addGenerationPrompt: true, rendered: rendered as string });
  if (/_(single|nosplit)_/.test(name) || name === 'idefics3_lora_logits') return [gen(conv(1, 'What is in this image?'), j.prompt)];
  if (name.endsWith('_batch_leftpad')) {
    const p = j.prompts as string[];
    return [gen(conv(1, 'Describe the image.'), p[0]), gen(conv(2, 'Compare these two images please.'), p[1])];
  }
  if (name.endsWith('_textonly')) return [gen([{ role: 'user', content: [{ type: 'text', text: 'Say hello.' }] }], j.prompt)];
  if (name === 'smolvlm_video') return [gen(VIDEO_MSGS, j.prompt)];
  if (name === 'idefics3_lora_dpo') return [gen(conv(1, 'What color is the square?'), j.prompt)];
  if (name === 'idefics3_lora_sft_step') {
    const t = j.texts as string[];
    return [
      { messages: conv(1, 'What is in this image?', 'There are 3 red circles in the image.'), addGenerationPrompt: false, rendered: t[0]! },
      { messages: conv(1, 'How many shapes?', '4.'), addGenerationPrompt: false, rendered: t[1]! },
    ];
  }
  if (name === 'smolvlm_full_ft_grads') {
    return [{ messages: conv(1, 'What is in this image?', 'A blue square.'), addGenerationPrompt: false, rendered: j.text as string }];
  }
  return null;
}

const modelDirOf = (name: string) => join(REF, name.startsWith('smolvlm') ? 'tiny-smolvlm' : 'tiny-idefics3');
const builders = new Map<string, PromptBuilder>();
function builderFor(name: string): PromptBuilder {
  const d = modelDirOf(name);
  let b = builders.get(d);
  if (!b) builders.set(d, (b = PromptBuilder.fromDir(d)));
  return b;
}

const allCases = readdirSync(CASES).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();

describe('tokenizer', () => {
  for (const dir of ['tokenizer', 'tiny-idefics3', 'tiny-smolvlm']) {
    it(`loads ${dir} with SmolVLM's special ids`, () => {
      const tok = Tokenizer.fromDir(join(REF, dir));
      const cfg = JSON.parse(readFileSync(join(REF, 'tiny-smolvlm', 'config.json'), 'utf8')) as Json;
      assert.equal(tok.specialIds.image, cfg.image_token_id);
      assert.equal(tok.specialIds.pad, cfg.pad_token_id);
      assert.equal(tok.specialIds.bos, (cfg.text_config as Json).bos_token_id);
      assert.equal(tok.specialIds.eos, (cfg.text_config as Json).eos_token_id);
      assert.equal(tok.specialIds.endOfUtterance, tok.specialIds.eos);
      assert.equal(tok.idToToken(tok.specialIds.fakeTokenAroundImage!), '<fake_token_around_image>');
      assert.equal(tok.idToToken(tok.specialIds.globalImage!), '<global-img>');
      assert.equal(tok.idToToken(tok.specialIds.video!), '<video>');
      assert.equal(tok.idToToken(tok.rowColId(3, 4)!), '<row_3_col_4>');
      assert.equal(tok.tokenToId('<row_6_col_6>'), tok.rowColId(6, 6));
      assert.equal(tok.vocabSize, 440);
      assert.equal(tok.padId(), 2);
    });
  }

  it('encodes special tokens as single ids and decodes with/without them', () => {
    const tok = Tokenizer.fromDir(join(REF, 'tokenizer'));
    const ids = tok.encode('<|im_start|>User:<image>What color is the square?<end_of_utterance>');
    assert.equal(ids[0], tok.specialIds.bos);
    assert.ok(ids.includes(tok.specialIds.image!));
    assert.equal(ids[ids.length - 1], tok.specialIds.eos);
    assert.equal(tok.decode(ids), '<|im_start|>User:<image>What color is the square?<end_of_utterance>');
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'User:What color is the square?');
    assert.deepEqual(tok.encode('abc', { addSpecialTokens: false }), tok.encode('abc'));
    assert.equal(tok.decode([]), '');
    // ids of the model's padded embedding rows decode to nothing; negative ids are an error
    assert.equal(tok.decode([...ids, 445, 100000]), tok.decode(ids));
    assert.throws(() => tok.decode([-1]), (e: unknown) => e instanceof VlmkitError && e.code === 'E_TOKEN');
  });

  it('stream decoder never splits a multi-byte character and reproduces decode()', () => {
    const tok = Tokenizer.fromDir(join(REF, 'tokenizer'));
    const text = 'héllo 日本語 🎉 a blue square ñ€𝄞<end_of_utterance>';
    const ids = tok.encode(text);
    // the byte-level BPE has no merges for these characters, so they span several ids
    assert.ok(ids.length > [...text].length - 20);
    const sd = tok.createStreamDecoder();
    const deltas: string[] = [];
    let withheld = 0;
    for (const id of ids) {
      const d = sd.push(id);
      if (d === '') withheld++;
      assert.ok(!d.includes('\uFFFD'), `delta ${JSON.stringify(d)} contains a broken character`);
      // every delta is whole code points
      assert.equal(Buffer.from(d, 'utf8').toString('utf8'), d);
      deltas.push(d);
    }
    deltas.push(sd.flush());
    assert.ok(withheld > 0, 'some ids complete no character by themselves');
    assert.equal(deltas.join(''), tok.decode(ids));
    assert.equal(deltas.join(''), text);

    const sk = tok.createStreamDecoder({ skipSpecialTokens: true });
    let out = '';
    for (const id of ids) out += sk.push(id);
    out += sk.flush();
    assert.equal(out, text.replace('<end_of_utterance>', ''));

    // flush hands out an incomplete tail (as U+FFFD) at the end of generation
    const emojiIds = tok.encode('🎉');
    assert.ok(emojiIds.length > 1);
    const part = tok.createStreamDecoder();
    assert.equal(part.push(emojiIds[0]!), '');
    assert.equal(part.flush(), '\uFFFD');
  });

  it('missing tokenizer.json is a VlmkitError naming the directory', () => {
    const d = mkdtempSync(join(tmpdir(), 'vlmkit-tok-'));
    try {
      assert.throws(() => Tokenizer.fromDir(d), (e: unknown) => e instanceof VlmkitError && e.code === 'E_FILE' && e.message.includes(d));
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('chat template', () => {
  it('covers every case that carries a prompt', () => {
    for (const name of allCases) {
      const j = caseJson(name);
      const hasPrompt = ['prompt', 'prompts', 'text', 'expanded_text'].some((k) => k in j) || (name.includes('sft') && 'texts' in j);
      if (hasPrompt) assert.ok(samplesOf(name, j), `case ${name} has a prompt but no conversation in this test`);
    }
  });

  for (const name of allCases) {
    const j = caseJson(name);
    const samples = samplesOf(name, j);
    if (!samples) continue;
    it(`${name}: renders the json's prompt`, () => {
      const b = builderFor(name);
      for (const s of samples) {
        const text = b.chatTemplate.render(s.messages, {
          addGenerationPrompt: s.addGenerationPrompt,
          specialTokens: { bos_token: b.tokenizer.bosToken },
        });
        assert.equal(text, s.rendered);
      }
    });
  }

  it('the tokenizer directory renders and tokenizes the text-only prompt', () => {
    const dir = join(REF, 'tokenizer');
    const tok = Tokenizer.fromDir(dir);
    const tpl = ChatTemplate.fromDir(dir);
    assert.match(tpl.source, /chat_template\.jinja$/);
    const text = tpl.render([{ role: 'user', content: 'Say hello.' }], { addGenerationPrompt: true });
    assert.equal(text, caseJson('idefics3_textonly').prompt);
    assert.deepEqual(tok.encode(text), readIntRows('idefics3_textonly', 'input_ids')[0]);
  });

  it('falls back to chat_template.json, then tokenizer_config.json (string or named list)', () => {
    const src = readFileSync(join(REF, 'tokenizer', 'chat_template.jinja'), 'utf8');
    const d = mkdtempSync(join(tmpdir(), 'vlmkit-tpl-'));
    try {
      copyFileSync(join(REF, 'tokenizer', 'tokenizer.json'), join(d, 'tokenizer.json'));
      writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify({ chat_template: [{ name: 'default', template: 'CFG' + src }, { name: 'tool_use', template: 'TOOLS' }] }));
      assert.ok(findChatTemplate(d)!.template.startsWith('CFG'));
      assert.equal(findChatTemplate(d, { name: 'tool_use' })!.template, 'TOOLS');
      writeFileSync(join(d, 'chat_template.json'), JSON.stringify({ chat_template: 'JSON' + src }));
      assert.ok(findChatTemplate(d)!.template.startsWith('JSON'));
      assert.match(findChatTemplate(d)!.source, /chat_template\.json$/);
      writeFileSync(join(d, 'chat_template.jinja'), src);
      assert.equal(findChatTemplate(d)!.template, src);
      writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify({ chat_template: 'PLAIN' }));
      rmSync(join(d, 'chat_template.jinja'));
      rmSync(join(d, 'chat_template.json'));
      assert.equal(findChatTemplate(d)!.template, 'PLAIN');
      assert.throws(() => loadChatTemplateSource(d, { name: 'nope' }), (e: unknown) => e instanceof VlmkitError && e.code === 'E_TEMPLATE');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('a directory without a template is E_TEMPLATE naming the directory and the fix', () => {
    const d = mkdtempSync(join(tmpdir(), 'vlmkit-notpl-'));
    try {
      copyFileSync(join(REF, 'tokenizer', 'tokenizer.json'), join(d, 'tokenizer.json'));
      writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<|im_start|>' }));
      assert.throws(
        () => ChatTemplate.fromDir(d),
        (e: unknown) =>
          e instanceof VlmkitError && e.code === 'E_TEMPLATE' && e.message.includes(d) && e.message.includes('chat_template.jinja') && /copy|pass/.test(e.message),
      );
      // text-only use of the directory still works: the template is loaded on first use
      const b = new PromptBuilder(d, Tokenizer.fromDir(d), { imageSeqLen: 4 });
      assert.deepEqual(b.buildText('Hi').inputIds, b.tokenizer.encode('Hi'));
      assert.throws(() => b.build([{ role: 'user', content: 'Hi' }]), (e: unknown) => e instanceof VlmkitError && e.code === 'E_TEMPLATE');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('a broken template is E_TEMPLATE', () => {
    assert.throws(() => new ChatTemplate('{% for x in %}'), (e: unknown) => e instanceof VlmkitError && e.code === 'E_TEMPLATE');
    const t = new ChatTemplate("{{ raise_exception('roles must alternate') }}");
    assert.throws(() => t.render([]), (e: unknown) => e instanceof VlmkitError && e.code === 'E_TEMPLATE' && e.message.includes('roles must alternate'));
  });
});

describe('prompt expansion and input ids (transformers Idefics3Processor / SmolVLMProcessor)', () => {
  it('reads image_seq_len, model_type and pad id from the model directories', () => {
    assert.deepEqual(
      { ...loadPromptConfig(join(REF, 'tiny-idefics3')), templateVariables: undefined },
      { imageSeqLen: 4, modelType: 'idefics3', padTokenId: 2, templateVariables: undefined },
    );
    const s = loadPromptConfig(join(REF, 'tiny-smolvlm'));
    assert.equal(s.imageSeqLen, 4);
    assert.equal(s.modelType, 'smolvlm');
    assert.deepEqual(s.templateVariables, { num_frames: 6, fps: 1 });
  });

  for (const name of allCases.filter((n) => /_(single|nosplit)_/.test(n) || n === 'idefics3_lora_logits')) {
    it(`${name}: expanded_text, input_ids, attention_mask`, () => {
      const j = caseJson(name);
      const b = builderFor(name);
      const ids = readIntRows(name, 'input_ids')[0]!;
      const mask = readIntRows(name, 'attention_mask')[0]!;
      // rows/cols come from the fixture's expanded text; the nosplit cases have none: no splitting = 0 x 0
      let grids: ImageGrid[];
      if (typeof j.expanded_text === 'string') {
        grids = gridsFromExpanded(j.expanded_text);
        assert.equal(b.tokenizer.decode(ids), j.expanded_text);
      } else if (j.do_image_splitting === false) {
        grids = [{ rows: 0, cols: 0 }];
      } else {
        grids = gridsFromExpanded(b.tokenizer.decode(ids));
      }
      assert.equal(grids.length, 1);
      const out = b.build(conv(1, 'What is in this image?'), { images: grids });
      assert.equal(out.prompt, j.prompt);
      if (typeof j.expanded_text === 'string') assert.equal(out.text, j.expanded_text);
      assert.deepEqual(out.inputIds, ids);
      const batch = buildPromptBatch([{ text: out.prompt, images: grids }], { tokenizer: b.tokenizer, config: b.config });
      assert.deepEqual(batch.inputIds, [ids]);
      assert.deepEqual(batch.attentionMask, [mask]);
    });
  }

  for (const name of allCases.filter((n) => n.endsWith('_textonly'))) {
    it(`${name}: input_ids, attention_mask`, () => {
      const j = caseJson(name);
      const b = builderFor(name);
      const out = b.build([{ role: 'user', content: [{ type: 'text', text: 'Say hello.' }] }]);
      assert.equal(out.text, j.prompt);
      const batch = buildPromptBatch([{ text: out.text }], { tokenizer: b.tokenizer, config: b.config });
      assert.deepEqual(batch.inputIds, readIntRows(name, 'input_ids'));
      assert.deepEqual(batch.attentionMask, readIntRows(name, 'attention_mask'));
    });
  }

  for (const name of allCases.filter((n) => n.endsWith('_batch_leftpad'))) {
    it(`${name}: left-padded batch equals the reference`, () => {
      const j = caseJson(name);
      const b = builderFor(name);
      const refIds = readIntRows(name, 'input_ids');
      const refMask = readIntRows(name, 'attention_mask');
      const pad = b.padId();
      // grids from each row's decoded text (padding dropped)
      const grids = refIds.map((row, i) => gridsFromExpanded(b.tokenizer.decode(row.filter((_, k) => refMask[i]![k] === 1))));
      assert.deepEqual(grids.map((g) => g.length), (j.images as string[][]).map((x) => x.length));
      const convs = [conv(1, 'Describe the image.'), conv(2, 'Compare these two images please.')];
      const batch = buildPromptBatch(
        convs.map((messages, i) => ({ messages, images: grids[i], chatTemplate: b.chatTemplate })),
        { tokenizer: b.tokenizer, config: b.config, side: 'left' },
      );
      assert.deepEqual(batch.prompts.map((p) => p.prompt), j.prompts);
      assert.equal(batch.seqLen, refIds[0]!.length);
      assert.deepEqual(batch.inputIds, refIds);
      assert.deepEqual(batch.attentionMask, refMask);
      assert.ok(refIds[0]![0] === pad && refMask[0]![0] === 0, 'the reference is left-padded');
      const flat = batchToArrays(batch);
      assert.deepEqual(flat.shape, [2, refIds[0]!.length]);
      assert.deepEqual(Array.from(flat.inputIds), refIds.flat());
    });
  }

  it('idefics3_lora_sft_step: right-padded training batch equals the reference', () => {
    const name = 'idefics3_lora_sft_step';
    const j = caseJson(name);
    const b = builderFor(name);
    const refIds = readIntRows(name, 'input_ids');
    const refMask = readIntRows(name, 'attention_mask');
    const grids = refIds.map((row, i) => gridsFromExpanded(b.tokenizer.decode(row.filter((_, k) => refMask[i]![k] === 1))));
    const convs = [conv(1, 'What is in this image?', 'There are 3 red circles in the image.'), conv(1, 'How many shapes?', '4.')];
    const batch = buildPromptBatch(
      convs.map((messages, i) => ({ messages, images: grids[i], chatTemplate: b.chatTemplate, addGenerationPrompt: false })),
      { tokenizer: b.tokenizer, config: b.config, side: 'right' },
    );
    assert.deepEqual(batch.prompts.map((p) => p.prompt), j.texts);
    assert.deepEqual(batch.inputIds, refIds);
    assert.deepEqual(batch.attentionMask, refMask);
    assert.ok(refMask.some((m) => m[m.length - 1] === 0), 'the reference is right-padded');
  });

  it('idefics3_lora_dpo: prompt + chosen / rejected tokenize to the reference ids', () => {
    const name = 'idefics3_lora_dpo';
    const j = caseJson(name);
    const b = builderFor(name);
    for (const which of ['chosen', 'rejected'] as const) {
      const ref = readIntRows(name, `${which}_input_ids`)[0]!;
      const grids = gridsFromExpanded(b.tokenizer.decode(ref));
      const p = b.build(conv(1, 'What color is the square?'), { images: grids });
      assert.equal(p.prompt, j.prompt);
      assert.equal(p.inputIds.length, j[`prompt_len_${which}`]);
      assert.deepEqual(b.buildText(p.prompt + (j[which] as string), { images: grids }).inputIds, ref);
    }
  });

  it('smolvlm_full_ft_grads: the labelled conversation tokenizes to the reference ids', () => {
    const name = 'smolvlm_full_ft_grads';
    const b = builderFor(name);
    const ref = readIntRows(name, 'input_ids')[0]!;
    const grids = gridsFromExpanded(b.tokenizer.decode(ref));
    const p = b.build(conv(1, 'What is in this image?', 'A blue square.'), { images: grids }, { addGenerationPrompt: false });
    assert.equal(p.prompt, caseJson(name).text);
    assert.deepEqual(p.inputIds, ref);
    assert.deepEqual(readIntRows(name, 'attention_mask')[0], ref.map(() => 1));
  });

  it('smolvlm_video: the SmolVLM2 video prompt from frame timestamps', () => {
    const name = 'smolvlm_video';
    const j = caseJson(name);
    const b = builderFor(name);
    const timestamps = videoFrameTimestamps([0, 1, 2, 3, 4, 5], j.fps as number);
    const out = b.build(VIDEO_MSGS, { videos: [{ timestamps, duration: j.duration as number }] });
    assert.equal(out.prompt, j.prompt);
    assert.equal(out.text, j.expanded_text);
    assert.deepEqual(out.inputIds, readIntRows(name, 'input_ids')[0]);
    assert.deepEqual(readIntRows(name, 'attention_mask')[0], out.inputIds.map(() => 1));
    // expandVideoPrompt alone, on the rendered prompt
    assert.equal(expandVideoPrompt(j.prompt as string, [{ timestamps, duration: 3 }], 4), j.expanded_text);
  });

  for (const name of ['clip_logits', 'siglip_logits']) {
    it(`${name}: texts tokenize to the right-padded reference ids`, () => {
      const dir = join(REF, name.startsWith('clip') ? 'tiny-clip' : 'tiny-siglip');
      const tok = Tokenizer.fromDir(dir);
      const ids = (caseJson(name).texts as string[]).map((t) => tok.encode(t));
      const refMask = readIntRows(name, 'attention_mask');
      const batch = padBatch(ids, { side: 'right', padId: tok.padId() });
      assert.deepEqual(batch.inputIds, readIntRows(name, 'input_ids'));
      assert.deepEqual(batch.attentionMask, refMask);
    });
  }
});

describe('prompt expansion rules and errors', () => {
  it('expands split and unsplit images as the processors do', () => {
    assert.equal(
      imagePromptString({ rows: 1, cols: 2 }, 2),
      '<fake_token_around_image><row_1_col_1><image><image><fake_token_around_image><row_1_col_2><image><image>\n' +
        '\n<fake_token_around_image><global-img><image><image><fake_token_around_image>',
    );
    assert.equal(imagePromptString({ rows: 0, cols: 0 }, 3), '<fake_token_around_image><global-img><image><image><image><fake_token_around_image>');
    assert.equal(
      expandImagePrompt('a<image>b<image>c', [{ rows: 0, cols: 0 }, { rows: 1, cols: 1 }], 1),
      'a<fake_token_around_image><global-img><image><fake_token_around_image>b' +
        '<fake_token_around_image><row_1_col_1><image>\n\n<fake_token_around_image><global-img><image><fake_token_around_image>c',
    );
    assert.equal(expandImagePrompt('no images', [], 4), 'no images');
  });

  it('placeholder/image count mismatch is E_PROMPT with both counts and the fix', () => {
    const check = (text: string, grids: ImageGrid[], nText: number, nImg: number) =>
      assert.throws(
        () => expandImagePrompt(text, grids, 4),
        (e: unknown) =>
          e instanceof VlmkitError &&
          e.code === 'E_PROMPT' &&
          e.message.includes(`${nText} <image> placeholder`) &&
          e.message.includes(`${nImg} image`) &&
          e.message.includes('one image per <image>'),
      );
    check('<image><image>two', [{ rows: 0, cols: 0 }], 2, 1);
    check('none', [{ rows: 2, cols: 2 }], 0, 1);
    check('<image>', [], 1, 0);
    const b = builderFor('idefics3_textonly');
    assert.throws(() => b.build(conv(2, 'Two?'), { images: [{ rows: 1, cols: 1 }] }), (e: unknown) => e instanceof VlmkitError && e.code === 'E_PROMPT');
    assert.throws(
      () => buildPromptBatch([{ text: '<image>' }, { text: 'x' }], { tokenizer: b.tokenizer, config: b.config }),
      (e: unknown) => e instanceof VlmkitError && e.code === 'E_PROMPT' && e.message.startsWith('batch sample 0:'),
    );
    assert.throws(() => expandVideoPrompt('<video><video>', [{ timestamps: [0], duration: 1 }], 4), (e: unknown) => e instanceof VlmkitError && e.code === 'E_PROMPT' && e.message.includes('2 <video> placeholders') && e.message.includes('1 video was given'));
    assert.throws(() => imagePromptString({ rows: 2, cols: 0 }, 4), (e: unknown) => e instanceof VlmkitError && e.code === 'E_PROMPT');
    assert.throws(() => buildPrompt({ tokenizer: b.tokenizer, config: b.config, messages: conv(0, 'x') }), (e: unknown) => e instanceof VlmkitError && e.code === 'E_TEMPLATE');
  });

  it('spells frame counts and durations like num2words / timedelta', () => {
    const words: [number, string][] = [[0, 'zero'], [6, 'six'], [13, 'thirteen'], [20, 'twenty'], [21, 'twenty-one'], [64, 'sixty-four'],
      [100, 'one hundred'], [105, 'one hundred and five'], [999, 'nine hundred and ninety-nine'], [1000, 'one thousand'],
      [1001, 'one thousand and one'], [1100, 'one thousand, one hundred'], [1234, 'one thousand, two hundred and thirty-four'],
      [101000, 'one hundred and one thousand'], [2000000, 'two million']];
    for (const [n, w] of words) assert.equal(numberToWords(n), w);
    assert.equal(formatDuration(3), '0:00:03');
    assert.equal(formatDuration(3.9), '0:00:03');
    assert.equal(formatDuration(3723), '1:02:03');
    assert.equal(formatDuration(86401), '1 day, 0:00:01');
    assert.equal(formatDuration(2 * 86400 + 36000), '2 days, 10:00:00');
    const v = expandVideoPrompt('<video>', [{ timestamps: [59.9, 61, 3600], duration: 3601 }], 1);
    assert.ok(v.startsWith('You are provided the following series of three frames from a 1:00:01 [H:MM:SS] video.\n'));
    assert.ok(v.includes('\nFrame from 00:59:') && v.includes('\nFrame from 01:01:') && v.includes('\nFrame from 60:00:'));
    assert.ok(v.endsWith('<fake_token_around_image>\n\n'));
  });

  it('pads left for generation and right for training', () => {
    const l = padBatch([[5, 6, 7], [8]], { side: 'left', padId: 2 });
    assert.deepEqual(l.inputIds, [[5, 6, 7], [2, 2, 8]]);
    assert.deepEqual(l.attentionMask, [[1, 1, 1], [0, 0, 1]]);
    const r = padBatch([[5, 6, 7], [8]], { side: 'right', padId: 2, padToMultipleOf: 4 });
    assert.deepEqual(r.inputIds, [[5, 6, 7, 2], [8, 2, 2, 2]]);
    assert.deepEqual(r.attentionMask, [[1, 1, 1, 0], [1, 0, 0, 0]]);
    assert.equal(r.seqLen, 4);
  });
});
