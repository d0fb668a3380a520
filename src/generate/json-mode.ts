// Constrained decoding for JSON output (OpenAI's response_format json_object): a row's next token is drawn only
// from tokens whose bytes continue a valid JSON object (json-prefix.ts), and once the object closes the next
// token is the end of sequence. The object is also closed in time: a token is allowed only when the bytes that
// would complete the object after it still fit in the tokens left (one token per byte at worst, every byte being
// a token of a byte-level BPE), so an answer cut only by max_tokens smaller than "{}" plus the end is invalid.
//
// Masking all V tokens costs V state copies per step; most steps need far fewer: the sampler draws from the
// unmasked scores and a refused token is taken out and it draws again, which samples the same renormalised
// distribution (greedy: the best allowed token). Only after REJECTIONS refusals is the whole vocabulary masked.
import { VlmkitError } from '../errors.js';
import type { Tokenizer } from '../processing/tokenizer.js';
import { JsonPrefix } from './json-prefix.js';
import type { Sampler } from './sampling.js';
import { tokenBytesTable } from './token-bytes.js';

const REJECTIONS = 16;

export class JsonConstraint {
  private state = new JsonPrefix();
  private readonly table: (Uint8Array | null)[];

  constructor(tokenizer: Tokenizer, vocabSize: number, private readonly eos: number | undefined) {
    if (eos === undefined) throw new VlmkitError('E_OPTION', 'JSON output needs an end-of-sequence token to end the answer once the object closes; this model has none configured');
    this.table = tokenBytesTable(tokenizer, vocabSize);
  }

  get done(): boolean {
    return this.state.done;
  }

  /**
   * The next token from `scores` (the row's processed scores, changed here) with `sampler`; `left` is how many
   * tokens the row may still make, this one included.
   */
  pick(scores: Float32Array, sampler: Sampler, left: number): number {
    if (this.state.done) return this.eos!;
    // closing bytes + the end of sequence must fit; when they already do not (max_tokens too small) any valid token goes
    const budget = this.state.closingBytes() + 1 <= left ? left - 1 : Infinity;
    const original = scores.slice();
    for (let i = 0; i < REJECTIONS; i++) {
      const tok = sampler.next(scores);
      if (this.allowed(tok, budget)) return tok;
      scores[tok] = -Infinity;
    }
    let any = -1;
    let finite = false;
    for (let id = 0; id < original.length; id++) {
      if (!this.allowed(id, budget)) original[id] = -Infinity;
      else {
        if (any < 0) any = id;
        if (original[id] !== -Infinity) finite = true;
      }
    }
    if (finite) return sampler.next(original);
    // every allowed token was cut by top-k/top-p: the first allowed one (none at all cannot happen with a
    // byte-level vocabulary; the end of sequence then ends the row)
    return any >= 0 ? any : this.eos!;
  }

  /** Advances past the chosen token. */
  accept(tok: number): void {
    if (this.state.done) return;
    const bytes = this.table[tok];
    const next = this.state.clone();
    if (bytes && next.pushBytes(bytes)) this.state = next;
  }

  /** Whether `tok` continues the object and leaves room to close it within `budget` more tokens. */
  private allowed(tok: number, budget: number): boolean {
    const bytes = this.table[tok];
    if (!bytes || bytes.length === 0) return false;
    const s = this.state.clone();
    if (!s.pushBytes(bytes)) return false;
    return s.closingBytes() + 1 <= budget;
  }
}
