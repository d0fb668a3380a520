// Log-probabilities of a generated token and of the most likely alternatives, as OpenAI's logprobs reports them:
// the model's own distribution, log_softmax of the raw logits, before temperature, top-p, repetition penalty or a
// JSON constraint change what the sampler draws from (so a greedy token's logprob is the largest of its step's,
// whatever the settings).

export interface TopLogprob {
  tokenId: number;
  logprob: number;
}

export interface TokenLogprobs {
  /** log p(the generated token) */
  logprob: number;
  /** the `top` most likely tokens of this step, most likely first (ties: the lower id first) */
  top: TopLogprob[];
}

/** log_softmax(row)[tok] and the top `k` entries of log_softmax(row), in f64. */
export function tokenLogprobs(row: Float32Array, tok: number, k: number): TokenLogprobs {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  const lse = max + Math.log(sum);
  // the k best ids in order, by insertion (k <= 20)
  const best: number[] = [];
  if (k > 0) {
    for (let i = 0; i < row.length; i++) {
      const v = row[i]!;
      if (best.length === k && !(v > row[best[k - 1]!]!)) continue;
      let j = best.length < k ? best.length : k - 1;
      best[j] = i;
      while (j > 0 && v > row[best[j - 1]!]!) {
        best[j] = best[j - 1]!;
        best[j - 1] = i;
        j--;
      }
    }
  }
  return { logprob: row[tok]! - lse, top: best.map((id) => ({ tokenId: id, logprob: row[id]! - lse })) };
}
