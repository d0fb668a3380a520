// When a row stops: an end-of-sequence token, a stop string in the decoded text, max_new_tokens, or the end of
// the model's context. Also reads generation_config.json, whose values are the defaults transformers uses.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileFormatError } from '../errors.js';

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

function readJsonIf(path: string): Record<string, unknown> | null {
  if (!existsSync(path)) return null;
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new FileFormatError(`${path} is not valid JSON (${(e as Error).message}); re-download it from the checkpoint`);
  }
}

function ids(v: unknown): number[] | null {
  if (typeof v === 'number' && Number.isInteger(v)) return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number' && Number.isInteger(x));
  return null;
}

function firstId(...vs: unknown[]): number | null {
  for (const v of vs) if (typeof v === 'number' && Number.isInteger(v)) return v;
  return null;
}

function numIf(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Reads generation_config.json (optional) with config.json as the fallback for the special ids. */
export function loadGenerationConfig(dir: string): GenerationConfig {
  const g = readJsonIf(join(dir, 'generation_config.json')) ?? {};
  const c = readJsonIf(join(dir, 'config.json')) ?? {};
  const t = (c.text_config ?? {}) as Record<string, unknown>;
  return {
    eosTokenIds: ids(g.eos_token_id) ?? ids(c.eos_token_id) ?? ids(t.eos_token_id) ?? [],
    bosTokenId: firstId(g.bos_token_id, c.bos_token_id, t.bos_token_id),
    padTokenId: firstId(g.pad_token_id, c.pad_token_id, t.pad_token_id),
    maxNewTokens: numIf(g.max_new_tokens),
    doSample: typeof g.do_sample === 'boolean' ? g.do_sample : undefined,
    temperature: numIf(g.temperature),
    topK: numIf(g.top_k),
    topP: numIf(g.top_p),
    repetitionPenalty: numIf(g.repetition_penalty),
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
