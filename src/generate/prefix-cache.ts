// Prompt prefixes already computed, shared between requests (the server's continuous batcher): the keys and values
// of recent prompts, so that a prompt starting the same way (the next turn of a chat, another question about the
// same image) copies the cached positions of the longest shared prefix and runs only the rest.
//
// A prefix is shared when its token ids are AND its images are: an image's placeholder tokens are the same ids for
// any picture of the same size, so each entry keeps the content hashes of its images, and a match is cut at the
// start of the first image whose picture differs. Entries are bounded in bytes, least recently used out first;
// an entry whose prompt is a prefix of a newer one's (same images) is dropped for it, the newer one serving both.
// The caches held here are copies no generation writes to.
import type { KVCache } from './types.js';

export interface PrefixKey {
  /** the prompt's token ids */
  ids: readonly number[];
  /** a content hash of each image, in prompt order */
  images: readonly string[];
  /** the position of each image's first token (its placeholder run), same order */
  imageStarts: readonly number[];
}

interface Entry {
  ids: readonly number[];
  images: readonly string[];
  cache: KVCache;
  bytes: number;
}

export interface PrefixMatch {
  cache: KVCache;
  /** cached positions usable: [0, length) */
  length: number;
}

export class PrefixCache {
  /** insertion order = recency (a hit moves its entry to the end) */
  private readonly entries = new Map<number, Entry>();
  private nextId = 0;
  bytes = 0;
  hits = 0;
  misses = 0;
  evictions = 0;

  constructor(readonly maxBytes: number) {
    if (!Number.isFinite(maxBytes) || maxBytes < 0) throw new RangeError(`prefix cache size must be a number of bytes >= 0, got ${maxBytes}`);
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The longest cached prefix of `key` (at most its length - 1: the last position runs for its logits), cut by
   * `resume` to where the model can resume (never inside an image tile); null when none is worth anything.
   */
  lookup(key: PrefixKey, resume: (p: number) => number): PrefixMatch | null {
    let best: { id: number; e: Entry; length: number } | null = null;
    for (const [id, e] of this.entries) {
      const lim = Math.min(e.ids.length, key.ids.length - 1);
      let p = 0;
      while (p < lim && e.ids[p] === key.ids[p]) p++;
      for (let k = 0; k < key.images.length && key.imageStarts[k]! < p; k++) {
        if (e.images[k] !== key.images[k]) {
          p = key.imageStarts[k]!;
          break;
        }
      }
      p = p > 0 ? resume(p) : 0;
      if (p > 0 && (!best || p > best.length)) best = { id, e, length: p };
    }
    if (!best) {
      this.misses++;
      return null;
    }
    this.hits++;
    this.entries.delete(best.id);
    this.entries.set(best.id, best.e);
    return { cache: best.e.cache, length: best.length };
  }

  /**
   * Keeps `cache` (taken over: disposed here when it leaves) as the keys/values of `key`'s prompt; `make` is only
   * called when the prompt is not held yet. Too large an entry for the whole budget is not kept.
   */
  insert(key: PrefixKey, make: () => KVCache): void {
    if (this.maxBytes === 0) return;
    const covers = (e: Entry) =>
      e.ids.length <= key.ids.length && e.ids.every((t, i) => t === key.ids[i]) && e.images.every((h, i) => h === key.images[i]);
    for (const [id, e] of this.entries) {
      if (e.ids.length === key.ids.length && covers(e) && e.images.length === key.images.length) {
        this.entries.delete(id);
        this.entries.set(id, e);
        return;
      }
    }
    const cache = make();
    const bytes = cache.bytes ?? Infinity;
    if (bytes > this.maxBytes) {
      cache.dispose();
      return;
    }
    for (const [id, e] of this.entries) if (covers(e)) this.drop(id, e);
    this.entries.set(this.nextId++, { ids: [...key.ids], images: [...key.images], cache, bytes });
    this.bytes += bytes;
    for (const [id, e] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.drop(id, e);
      this.evictions++;
    }
  }

  private drop(id: number, e: Entry): void {
    this.entries.delete(id);
    this.bytes -= e.bytes;
    e.cache.dispose();
  }

  clear(): void {
    for (const [id, e] of this.entries) this.drop(id, e);
  }
}
