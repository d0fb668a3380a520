// When a row stops: an end-of-sequence token, a stop string in the decoded text, max_new_tokens, or the end of
// the model's context. Also reads generation_config.json, whose values are the defaults transformers uses.
import { FileFormatError } from '../errors.js';
import { ModelDir } from '../io/model-dir.js';

/** What generation_config.json (and config.json for the ids) says, as far as vlmkit uses it. */
export interface GenerationConfig {
  /** generation_config.json eos_token_id, else config.json's (top level or text_config); [] when none */
  eosTokenIds: number[];
  bosTokenId: number | null;
  padTokenId: number | null;
  maxNewTokens?: number;
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
}


type Fields = Record<string, unknown>;

/** Reads fields of one parsed JSON file; a wrong type or range is an error naming the file, the field and the fix. */
class FieldReader {
  constructor(readonly obj: Fields, readonly path: string, readonly prefix = '') {}

  private value(key: string, ok: (v: unknown) => boolean, want: string): unknown {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined; // unset (Python None)
    if (!ok(v)) throw new FileFormatError(`${this.path}: "${this.prefix}${key}" must be ${want}, got ${JSON.stringify(v)}; fix or remove it`);
    return v;
  }

  int(key: string, min: number): number | undefined {
    return this.value(key, (v) => Number.isSafeInteger(v) && (v as number) >= min, `an integer >= ${min}`) as number | undefined;
  }

  num(key: string, ok: (x: number) => boolean, want: string): number | undefined {
    return this.value(key, (v) => typeof v === 'number' && Number.isFinite(v) && ok(v), want) as number | undefined;
  }

  bool(key: string): boolean | undefined {
    return this.value(key, (v) => typeof v === 'boolean', 'true or false') as boolean | undefined;
  }

  /** A token id or a list of them. */
  ids(key: string): number[] | undefined {
    const isId = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
    const v = this.value(key, (x) => isId(x) || (Array.isArray(x) && x.every(isId)), 'a token id (an integer >= 0) or a list of them');
    return v === undefined ? undefined : Array.isArray(v) ? (v as number[]) : [v as number];
  }
}

/** Reads generation_config.json (optional) with config.json as the fallback for the special ids. */
export function loadGenerationConfig(dir: string | ModelDir): GenerationConfig {
  const md = ModelDir.of(dir);
  const gPath = md.path('generation_config.json');
  const cPath = md.path('config.json');
  const g = new FieldReader(md.json('generation_config.json') ?? {}, gPath);
  const cj = md.json('config.json') ?? {};
  const c = new FieldReader(cj, cPath);
  const tj = cj.text_config;
  const t = new FieldReader(tj && typeof tj === 'object' && !Array.isArray(tj) ? (tj as Fields) : {}, cPath, 'text_config.');
  // pad_token_id -1 is what some older configs write for "none" (transformers only warns about it)
  const pad = (r: FieldReader) => r.int('pad_token_id', -1);
  const bos = (r: FieldReader) => r.int('bos_token_id', 0);
  const doSample = g.bool('do_sample');
  const temperature = g.num('temperature', (x) => x >= 0, 'a number >= 0');
  if (doSample && temperature === 0)
    throw new FileFormatError(`${gPath}: "temperature" is 0 with "do_sample" true; sampling needs a temperature > 0 (or set do_sample to false for greedy decoding)`);
  return {
    eosTokenIds: g.ids('eos_token_id') ?? c.ids('eos_token_id') ?? t.ids('eos_token_id') ?? [],
    bosTokenId: bos(g) ?? bos(c) ?? bos(t) ?? null,
    padTokenId: pad(g) ?? pad(c) ?? pad(t) ?? null,
    maxNewTokens: g.int('max_new_tokens', 1),
    doSample,
    temperature,
    topK: g.int('top_k', 0),
    topP: g.num('top_p', (x) => x > 0 && x <= 1, 'a number in (0, 1]'),
    repetitionPenalty: g.num('repetition_penalty', (x) => x > 0, 'a number > 0'),
  };
}

/**
 * Watches one row's decoded text for stop strings and says how much of it is safe to show: text that could still
 * grow into a stop string is held back, so a stream never shows a stop string or a piece of one.
 */
export class StopStringMatcher {
  private readonly stops: string[];
  private text = '';
  private emitted = 0;
  private stoppedAt = -1;

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  get stopped(): boolean {
    return this.stoppedAt >= 0;
  }

  /** The text so far, cut before the stop string once one was found. */
  get finalText(): string {
    return this.stoppedAt >= 0 ? this.text.slice(0, this.stoppedAt) : this.text;
  }

  /** Adds newly decoded text; returns the text that is now safe to show. */
  push(delta: string): string {
    if (this.stopped) return '';
    const prev = this.text.length;
    this.text += delta;
    let cut = -1;
    for (const s of this.stops) {
      const p = this.text.indexOf(s, Math.max(0, prev - s.length + 1));
      if (p >= 0 && (cut < 0 || p < cut)) cut = p;
    }
    if (cut >= 0) {
      this.stoppedAt = cut;
      const out = this.text.slice(this.emitted, Math.max(this.emitted, cut));
      this.emitted = Math.max(this.emitted, cut);
      return out;
    }
    let hold = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, this.text.length); k > hold; k--) {
        if (this.text.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    const safe = this.text.length - hold;
    if (safe <= this.emitted) return '';
    const out = this.text.slice(this.emitted, safe);
    this.emitted = safe;
    return out;
  }

  /** At the end of generation: whatever was held back (it did not become a stop string). */
  flush(extra = ''): string {
    if (extra) {
      const out = this.push(extra);
      if (this.stopped) return out;
      return out + this.flushRest();
    }
    return this.flushRest();
  }

  private flushRest(): string {
    if (this.stopped) return '';
    const out = this.text.slice(this.emitted);
    this.emitted = this.text.length;
    return out;
  }
}
