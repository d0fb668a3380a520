// The built-in model's tokenizer: byte-level BPE (GPT-2's ByteLevel pre-tokenizer and decoder, digits split one
// by one as SmolLM2 does) with merges learned from the generators' own text, SmolVLM's special tokens, the 1024
// location tokens, and SmolVLM's chat template. Written as tokenizer.json + tokenizer_config.json +
// chat_template.jinja, the files @huggingface/tokenizers, transformers and vlmkit's loader read.
//
// Ids: the SmolVLM special tokens first (the order of SmolVLM checkpoints), then the 256 byte characters, then one
// token per merge, then <loc0000>..<loc1023>. Location tokens are added tokens but not special: decoding with
// skip_special_tokens keeps them, since they are the answer.
import { join } from 'node:path';
import { writeTextFileAtomic } from '../io/safetensors-write.js';
import { SMOLVLM_VIDEO_CHAT_TEMPLATE } from '../processing/chat-template.js';
import { byteAlphabet, PreTokenizer, trainBpe } from './bpe.js';
import { chartsGenerator } from './charts.js';
import { allLocTokens, LOC_PATTERN } from './loc.js';
import { mixSeed, Rng } from './rng.js';
import { shapesGenerator } from './shapes.js';
import type { Generator } from './types.js';

export const SPECIAL_TOKENS = [
  '<|endoftext|>',
  '<|im_start|>',
  '<|im_end|>',
  '<end_of_utterance>',
  '<fake_token_around_image>',
  '<image>',
  '<global-img>',
  '<video>',
  ...Array.from({ length: 36 }, (_, i) => `<row_${Math.floor(i / 6) + 1}_col_${(i % 6) + 1}>`),
];

export interface TokenizerBuildOptions {
  /** largest number of ids before the location tokens (specials + 256 bytes + merges); default 2048 */
  baseVocab?: number;
  /** scenes of each generator whose text the merges are learned from; default 3000 */
  scenes?: number;
  /** extra text to learn from (one string per document) */
  extraText?: readonly string[];
}

export interface BuiltTokenizer {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  chatTemplate: string;
  merges: number;
  vocabSize: number;
}

/** A conversation as SmolVLM's template renders it: what the model reads and writes. */
function rendered(question: string, answer: string): string {
  return `<|im_start|>User:<image>${question}<end_of_utterance>\nAssistant: ${answer}<end_of_utterance>\n`;
}

/** The training text: every question type of both generators, in chat form, from fixed seeds. */
export function tokenizerCorpus(scenes: number): string[] {
  const docs: string[] = [];
  const gens: Generator[] = [shapesGenerator, chartsGenerator];
  gens.forEach((g, gi) => {
    for (let i = 0; i < scenes; i++) {
      const rng = new Rng(mixSeed(0x70c, gi, i));
      for (const qa of g.text(rng, g.defaultSize, g.categories.length)) docs.push(rendered(qa.question, qa.answer));
    }
  });
  return docs;
}

const addedToken = (id: number, content: string, special: boolean) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special });

export function buildTokenizer(o: TokenizerBuildOptions = {}): BuiltTokenizer {
  const baseVocab = o.baseVocab ?? 2048;
  const alphabet = byteAlphabet();
  const maxMerges = baseVocab - SPECIAL_TOKENS.length - alphabet.length;
  if (!Number.isInteger(baseVocab) || maxMerges < 0) throw new RangeError(`baseVocab must be at least ${SPECIAL_TOKENS.length + alphabet.length}, got ${baseVocab}`);
  const locs = allLocTokens();
  const pre = new PreTokenizer(SPECIAL_TOKENS, LOC_PATTERN);
  const counts = new Map<string, number>();
  for (const doc of [...tokenizerCorpus(o.scenes ?? 3000), ...(o.extraText ?? [])]) for (const w of pre.words(doc)) counts.set(w, (counts.get(w) ?? 0) + 1);
  const merges = trainBpe(counts, maxMerges);

  const vocab: Record<string, number> = {};
  let next = 0;
  const add = (t: string) => {
    if (!(t in vocab)) vocab[t] = next++;
  };
  SPECIAL_TOKENS.forEach(add);
  alphabet.forEach(add);
  for (const [a, b] of merges) add(a + b);
  locs.forEach(add);
  const added = [...SPECIAL_TOKENS.map((t) => addedToken(vocab[t]!, t, true)), ...locs.map((t) => addedToken(vocab[t]!, t, false))];

  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Digits', individual_digits: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      ],
    },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: {},
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  const tokenizerConfig = {
    bos_token: '<|im_start|>',
    eos_token: '<end_of_utterance>',
    pad_token: '<|im_end|>',
    unk_token: '<|endoftext|>',
    extra_special_tokens: ['<fake_token_around_image>', '<image>', '<end_of_utterance>'],
    clean_up_tokenization_spaces: false,
    model_max_length: 8192,
    processor_class: 'SmolVLMProcessor',
    tokenizer_class: 'GPT2Tokenizer',
  };
  return { tokenizerJson, tokenizerConfig, chatTemplate: SMOLVLM_VIDEO_CHAT_TEMPLATE, merges: merges.length, vocabSize: next };
}

/** Writes tokenizer.json, tokenizer_config.json and chat_template.jinja into dir (each file atomically). */
export function writeTokenizer(dir: string, t: BuiltTokenizer): string[] {
  const files: [string, string][] = [
    ['tokenizer.json', JSON.stringify(t.tokenizerJson, null, 2) + '\n'],
    ['tokenizer_config.json', JSON.stringify(t.tokenizerConfig, null, 2) + '\n'],
    ['chat_template.jinja', t.chatTemplate],
  ];
  for (const [name, text] of files) writeTextFileAtomic(join(dir, name), text);
  return files.map(([name]) => name);
}
