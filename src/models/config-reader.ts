// Typed reading of a model's config.json fields, shared by the families: every field checked (integers in a
// range, positive numbers, booleans, strings), every error naming the file, the field and the fix.
import { FileFormatError } from '../errors.js';
import type { Json } from '../io/model-dir.js';

export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o as object)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/**
 * Upper bounds on sizes, far above any released checkpoint (SmolVLM: 30 layers, hidden 576-2048, vocab 49k;
 * Idefics3-8B: 32 layers, hidden 4096, MLP 14336, vocab 128k), so that a corrupt or hostile config.json fails
 * here with its field named instead of running out of memory; the loader then checks every size against the
 * tensors actually present (weights.ts).
 */
export const LIMIT = {
  /** layers, heads, channels, scale factor */
  count: 4096,
  /** hidden sizes, head_dim, image and patch sizes */
  width: 65536,
  /** MLP widths */
  mlp: 1 << 20,
  /** vocabulary, context length, token ids */
  tokens: 1 << 24,
  /** image_token_id and other ids (int32) */
  id: 2 ** 31 - 1,
};

export class ConfigReader {
  constructor(readonly obj: Json, readonly where: string, readonly file = 'config.json') {}
  private bad(key: string, want: string): never {
    throw new FileFormatError(`${this.where}: "${key}" must be ${want}, got ${JSON.stringify(this.obj[key])}; fix ${this.file}`);
  }
  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }
  /** An integer in [min, max]: `max` refuses absurd sizes before anything is allocated from them. */
  int(key: string, def: number, min = 1, max = LIMIT.count): number {
    const v = this.obj[key];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      return this.bad(key, `an integer from ${min} to ${max}`);
    return v;
  }
  num(key: string, def: number): number {
    const v = this.obj[key];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) return this.bad(key, 'a positive number');
    return v;
  }
  bool(key: string, def: boolean): boolean {
    const v = this.obj[key];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'boolean') return this.bad(key, 'true or false');
    return v;
  }
  str(key: string, def: string): string {
    const v = this.obj[key];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'string') return this.bad(key, 'a string');
    return v;
  }
  optInt(key: string, def: number | null): number | null {
    const v = this.obj[key];
    if (v === undefined) return def;
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isInteger(v)) return this.bad(key, 'an integer or null');
    return v;
  }
  obj_(key: string): Json {
    const v = this.obj[key];
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) return this.bad(key, 'an object');
    return v as Json;
  }
}
