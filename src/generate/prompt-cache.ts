// The KV cache of one conversation, kept from one generation to the next. The next turn of a chat renders the
// whole conversation again; the tokens it shares with what the cache holds (the earlier turns, their images
// included) are not run again: generation keeps the cached positions of the longest common prefix and runs only
// the rest, so the second question about a 17-tile image costs its own few tokens instead of the image again.
// One row (no batch), one model; not thread-safe (one generation at a time).
import type { CausalLM, KVCache } from './types.js';

export class PromptCache {
  /** keys/values of `ids` (null before the first generation and after reset) */
  cache: KVCache | null = null;
  /** the tokens the cache holds, in order: the last prompt and every generated token but the last */
  ids: number[] = [];
  /** the model that made the cache */
  owner: CausalLM | null = null;

  /** Forgets everything (the next generation runs its whole prompt). */
  reset(): void {
    this.cache?.dispose();
    this.cache = null;
    this.ids = [];
    this.owner = null;
  }

  dispose(): void {
    this.reset();
  }
}
