// Tokenizer for SmolVLM / Idefics3 checkpoints: a thin wrapper around @huggingface/tokenizers (tokenizer.json +
// tokenizer_config.json) that exposes the ids the VLM pipeline needs (bos/eos/pad, the image placeholder tokens)
// and an incremental detokenizer for streaming generation.
//
// Encoding follows what transformers' Idefics3Processor / SmolVLMProcessor do: they call the tokenizer with
// add_special_tokens=True (the default here too); the tokenizer's own post-processor decides what that adds
// (SmolVLM's adds nothing, the chat template writes `<|im_start|>` itself).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { FileFormatError, VlmkitError } from '../errors.js';
import { ModelDir } from '../io/model-dir.js';

export interface EncodeOptions {
  /** Let the tokenizer's post-processor add its special tokens (BOS etc.). Default true, as transformers' processors do. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (`<image>`, `<end_of_utterance>`, pad, ...) from the text. Default false. */
  skipSpecialTokens?: boolean;
  /** transformers' clean_up_tokenization_spaces (" ." -> "." etc.). Default: tokenizer_config's value, else false. */
  cleanUpTokenizationSpaces?: boolean;
}

/** Ids of the tokens the VLM pipeline uses; null where the vocabulary lacks the token. */
export interface SpecialTokenIds {
  bos: number | null;
  eos: number | null;
  pad: number | null;
  unk: number | null;
  /** `<image>` */
  image: number | null;
  /** `<end_of_utterance>` */
  endOfUtterance: number | null;
  /** `<fake_token_around_image>` */
  fakeTokenAroundImage: number | null;
  /** `<global-img>` */
  globalImage: number | null;
  /** `<video>` */
  video: number | null;
}

/** Token strings of the Idefics3 / SmolVLM processors. */
export const IMAGE_TOKEN = '<image>';
export const FAKE_IMAGE_TOKEN = '<fake_token_around_image>';
export const GLOBAL_IMAGE_TOKEN = '<global-img>';
export const END_OF_UTTERANCE_TOKEN = '<end_of_utterance>';
export const VIDEO_TOKEN = '<video>';
export function rowColToken(row: number, col: number): string {
  return `<row_${row}_col_${col}>`;
}

/** tokenizer_config.json as far as we read it. Token fields may be a string or an AddedToken object {content}. */
export type TokenizerConfig = Record<string, unknown>;

function tokenString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}


export class Tokenizer {
  /** tokenizer_config.json (empty object when the directory has none). */
  readonly config: TokenizerConfig;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;
  readonly specialIds: SpecialTokenIds;
  private readonly hf: HfTokenizer;
  private readonly specialIdSet: Set<number>;
  private readonly cleanUp: boolean;
  private readonly size: number;

  constructor(tokenizerJson: object, tokenizerConfig: TokenizerConfig = {}) {
    const cfg = { ...tokenizerConfig };
    // transformers 5 writes the extra special tokens as `extra_special_tokens` (a list, or a dict name -> token);
    // 4.x as `additional_special_tokens`. The JS library reads the latter to know what skip_special_tokens drops.
    const extra: string[] = [];
    for (const key of ['additional_special_tokens', 'extra_special_tokens']) {
      const v = cfg[key];
      const list = Array.isArray(v) ? v : v && typeof v === 'object' ? Object.values(v) : [];
      for (const t of list) {
        const s = tokenString(t);
        if (s !== null && !extra.includes(s)) extra.push(s);
      }
    }
    cfg.additional_special_tokens = extra;
    try {
      this.hf = new HfTokenizer(tokenizerJson, cfg);
    } catch (e) {
      throw new FileFormatError(`tokenizer.json could not be loaded (${(e as Error).message}); re-download the model's tokenizer files`);
    }
    this.config = tokenizerConfig;
    this.cleanUp = tokenizerConfig.clean_up_tokenization_spaces === true;
    this.bosToken = tokenString(tokenizerConfig.bos_token);
    this.eosToken = tokenString(tokenizerConfig.eos_token);
    this.padToken = tokenString(tokenizerConfig.pad_token);
    this.unkToken = tokenString(tokenizerConfig.unk_token);
    const id = (t: string | null) => (t === null ? null : this.tokenToId(t) ?? null);
    this.specialIds = {
      bos: id(this.bosToken),
      eos: id(this.eosToken),
      pad: id(this.padToken),
      unk: id(this.unkToken),
      image: id(IMAGE_TOKEN),
      endOfUtterance: id(END_OF_UTTERANCE_TOKEN),
      fakeTokenAroundImage: id(FAKE_IMAGE_TOKEN),
      globalImage: id(GLOBAL_IMAGE_TOKEN),
      video: id(VIDEO_TOKEN),
    };
    this.specialIdSet = new Set<number>();
    for (const [tid, tok] of this.hf.get_added_tokens_decoder()) if (tok.special) this.specialIdSet.add(tid);
    for (const s of [this.bosToken, this.eosToken, this.padToken, this.unkToken, ...extra]) {
      const i = id(s);
      if (i !== null) this.specialIdSet.add(i);
    }
    let max = -1;
    for (const v of this.hf.get_vocab(true).values()) if (v > max) max = v;
    this.size = max + 1;
  }

  /** Loads `tokenizer.json` (required) and `tokenizer_config.json` (optional) from a model directory. */
  static fromDir(dir: string | ModelDir): Tokenizer {
    const md = ModelDir.of(dir);
    const json = md.requireJson('tokenizer.json', "download the model's tokenizer files (tokenizer.json, tokenizer_config.json) into that directory");
    return new Tokenizer(json, md.json('tokenizer_config.json') ?? {});
  }

  /** Number of ids (largest id + 1, added tokens included). */
  get vocabSize(): number {
    return this.size;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  /**
   * Ids past the vocabulary (models pad their embedding matrix, e.g. 440 tokens -> 448 rows) decode to nothing,
   * as in the Rust tokenizers library; negative or fractional ids are an error.
   */
  decode(ids: ArrayLike<number> | ArrayLike<bigint>, opts: DecodeOptions = {}): string {
    const list: number[] = [];
    for (const v of Array.from(ids as ArrayLike<number | bigint>, Number)) {
      if (!Number.isInteger(v) || v < 0) {
        throw new VlmkitError('E_TOKEN', `cannot decode token id ${v}: ids are non-negative integers`);
      }
      if (v < this.size && this.hf.id_to_token(v) !== undefined) list.push(v);
    }
    if (list.length === 0) return '';
    return this.hf.decode(list, {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: opts.cleanUpTokenizationSpaces ?? this.cleanUp,
    });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /** Like tokenToId, but a missing token is a VlmkitError naming it. */
  requireTokenId(token: string): number {
    const i = this.tokenToId(token);
    if (i === undefined) {
      throw new VlmkitError('E_TOKEN', `the tokenizer has no token ${JSON.stringify(token)}; use the tokenizer that belongs to this SmolVLM/Idefics3 checkpoint`);
    }
    return i;
  }

  /** Id of `<row_R_col_C>` (1-based), or undefined. */
  rowColId(row: number, col: number): number | undefined {
    return this.tokenToId(rowColToken(row, col));
  }

  isSpecialId(id: number): boolean {
    return this.specialIdSet.has(id);
  }

  /** Pad id for batches: the pad token, else `fallback` (e.g. config.json's pad_token_id), else eos. */
  padId(fallback?: number | null): number {
    const p = this.specialIds.pad ?? fallback ?? this.specialIds.eos;
    if (p === null || p === undefined) {
      throw new VlmkitError('E_TOKEN', 'the tokenizer has no pad_token and no eos_token; pass an explicit pad id');
    }
    return p;
  }

  /** Incremental detokenizer for streaming: push ids one at a time, get the newly completed text. */
  createStreamDecoder(opts: DecodeOptions = {}): StreamDecoder {
    return new StreamDecoder(this, opts);
  }
}

const REPLACEMENT = '\uFFFD';

/**
 * Turns a stream of ids into text deltas. It decodes a small window of recent ids (so decoders that depend on
 * the previous token, e.g. SentencePiece's leading space, see their context) and withholds text while the window
 * ends in an incomplete UTF-8 sequence (which decodes to U+FFFD), so a multi-byte character is never split.
 * The concatenation of every push() result and flush() equals tokenizer.decode(allIds).
 */
export class StreamDecoder {
  private readonly tok: Tokenizer;
  private readonly opts: DecodeOptions;
  private readonly all: number[] = [];
  /** start of the context window */
  private prefixOffset = 0;
  /** end of the text already emitted */
  private readOffset = 0;

  constructor(tok: Tokenizer, opts: DecodeOptions = {}) {
    this.tok = tok;
    // Cleaning up spaces could rewrite text that was already emitted; streaming never does it.
    this.opts = { ...opts, cleanUpTokenizationSpaces: false };
  }

  /** Every id pushed so far. */
  get ids(): readonly number[] {
    return this.all;
  }

  /** Adds one id (or several) and returns the text completed by it ('' while a character is still incomplete). */
  push(id: number | readonly number[]): string {
    if (typeof id === 'number') this.all.push(id);
    else this.all.push(...id);
    const prefix = this.tok.decode(this.all.slice(this.prefixOffset, this.readOffset), this.opts);
    const full = this.tok.decode(this.all.slice(this.prefixOffset), this.opts);
    if (full.length > prefix.length && !full.endsWith(REPLACEMENT)) {
      const delta = full.slice(prefix.length);
      this.prefixOffset = this.readOffset;
      this.readOffset = this.all.length;
      return delta;
    }
    return '';
  }

  /** Returns whatever is still withheld (an incomplete character decodes to U+FFFD), e.g. at end of generation. */
  flush(): string {
    const prefix = this.tok.decode(this.all.slice(this.prefixOffset, this.readOffset), this.opts);
    const full = this.tok.decode(this.all.slice(this.prefixOffset), this.opts);
    this.prefixOffset = this.readOffset = this.all.length;
    return full.slice(prefix.length);
  }
}
