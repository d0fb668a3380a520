// The built-in tokenizer: rebuilt byte-identically, loads through vlmkit's loader (@huggingface/tokenizers),
// round-trips generated text and arbitrary UTF-8, keeps SmolVLM's special tokens and the location tokens as
// single ids, and is internally consistent (every merge's parts and result are in the vocabulary).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { allLocTokens } from '../../src/data/loc.js';
import { buildTokenizer, SPECIAL_TOKENS, tokenizerCorpus } from '../../src/data/tokenizer.js';
import { renderChatTemplate } from '../../src/processing/chat-template.js';
import { Tokenizer } from '../../src/processing/tokenizer.js';

const built = buildTokenizer();
const tok = new Tokenizer(built.tokenizerJson, built.tokenizerConfig);

describe('built-in tokenizer', () => {
  it('is rebuilt byte-identically', () => {
    const a = JSON.stringify(buildTokenizer({ scenes: 100 }).tokenizerJson);
    const b = JSON.stringify(buildTokenizer({ scenes: 100 }).tokenizerJson);
    assert.equal(a, b);
    assert.notEqual(a, JSON.stringify(built.tokenizerJson), 'a different corpus learns different merges');
  });

  it('has a consistent vocabulary: ids 0..n-1 once each, merges made of vocabulary tokens', () => {
    const model = built.tokenizerJson.model as { vocab: Record<string, number>; merges: [string, string][] };
    const ids = Object.values(model.vocab).sort((a, b) => a - b);
    assert.deepEqual(ids, Array.from({ length: built.vocabSize }, (_, i) => i));
    assert.ok(built.merges > 200 && built.vocabSize < 3100, `${built.merges} merges, ${built.vocabSize} ids`);
    for (const [a, b] of model.merges) assert.ok(a in model.vocab && b in model.vocab && a + b in model.vocab, `${a} ${b}`);
    assert.equal(tok.vocabSize, built.vocabSize);
  });

  it('keeps special and location tokens as single ids; skipSpecialTokens drops specials, keeps locations', () => {
    for (const t of [...SPECIAL_TOKENS, ...allLocTokens()]) {
      const ids = tok.encode(t);
      assert.equal(ids.length, 1, t);
      assert.equal(tok.idToToken(ids[0]!), t);
    }
    assert.equal(tok.specialIds.image, 5);
    assert.equal(tok.specialIds.eos, tok.tokenToId('<end_of_utterance>'));
    assert.equal(tok.specialIds.pad, tok.tokenToId('<|im_end|>'));
    const ids = tok.encode('<loc0001><loc0002><loc0003><loc0004> red star<end_of_utterance>');
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), '<loc0001><loc0002><loc0003><loc0004> red star');
  });

  it('round-trips generated conversations compactly and arbitrary UTF-8 exactly', () => {
    const docs = tokenizerCorpus(50);
    let tokens = 0, chars = 0;
    for (const d of docs) {
      const ids = tok.encode(d);
      assert.equal(tok.decode(ids), d);
      tokens += ids.length;
      chars += d.length;
    }
    assert.ok(chars / tokens > 3, `only ${(chars / tokens).toFixed(2)} characters per token on its own text`);
    for (const s of ['héllo wörld', '世界 🙂 \u0000\t\r\n  x', 'What is 12345 + 0.5?', ' leading and trailing  ', '\uFFFD€']) assert.equal(tok.decode(tok.encode(s)), s);
  });

  it('renders prompts with SmolVLM chat template into the expected tokens', () => {
    const text = renderChatTemplate(built.chatTemplate, [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'How many stars are there?' }] }], { addGenerationPrompt: true });
    assert.equal(text, '<|im_start|>User:<image>How many stars are there?<end_of_utterance>\nAssistant:');
    const ids = tok.encode(text);
    assert.equal(ids[0], tok.tokenToId('<|im_start|>'));
    assert.ok(ids.includes(tok.tokenToId('<image>')!));
  });
});
