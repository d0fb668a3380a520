// The server's counters in Prometheus' text format (GET /metrics): requests by status, tokens, queue depth,
// running requests, a histogram of the time to first token, and the batched decode steps (their tokens and time:
// the engine's decode throughput, prefills excluded), and the prefix cache's hits, misses, evictions and size.
import type { PrefixCache } from '../generate/prefix-cache.js';

const TTFT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class Metrics {
  private readonly requests = new Map<string, number>();
  promptTokens = 0;
  completionTokens = 0;
  queueDepth = 0;
  running = 0;
  decodeSteps = 0;
  decodeTokens = 0;
  decodeSeconds = 0;
  private readonly ttftCounts = new Array<number>(TTFT_BUCKETS.length).fill(0);
  private ttftSum = 0;
  private ttftCount = 0;
  /** prompt tokens whose keys/values came from the prefix cache */
  cachedTokens = 0;

  constructor(private readonly prefixCache: PrefixCache | null = null) {}

  /** One finished request (any endpoint) with its HTTP status. */
  request(endpoint: string, status: number): void {
    const key = `endpoint="${endpoint}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  /** One batched decode step of `rows` sequences (a token each). */
  decodeStep(rows: number, seconds: number): void {
    this.decodeSteps++;
    this.decodeTokens += rows;
    this.decodeSeconds += seconds;
  }

  firstToken(seconds: number): void {
    TTFT_BUCKETS.forEach((b, i) => {
      if (seconds <= b) this.ttftCounts[i]!++;
    });
    this.ttftSum += seconds;
    this.ttftCount++;
  }

  text(): string {
    const out: string[] = [];
    out.push('# HELP vlmkit_requests_total HTTP requests answered, by endpoint and status.', '# TYPE vlmkit_requests_total counter');
    for (const [k, v] of [...this.requests].sort()) out.push(`vlmkit_requests_total{${k}} ${v}`);
    out.push('# HELP vlmkit_prompt_tokens_total Prompt tokens of the chat completions run.', '# TYPE vlmkit_prompt_tokens_total counter');
    out.push(`vlmkit_prompt_tokens_total ${this.promptTokens}`);
    out.push('# HELP vlmkit_completion_tokens_total Tokens generated.', '# TYPE vlmkit_completion_tokens_total counter');
    out.push(`vlmkit_completion_tokens_total ${this.completionTokens}`);
    out.push('# HELP vlmkit_queue_depth Requests waiting for the engine.', '# TYPE vlmkit_queue_depth gauge');
    out.push(`vlmkit_queue_depth ${this.queueDepth}`);
    out.push('# HELP vlmkit_requests_running Requests the engine is working on.', '# TYPE vlmkit_requests_running gauge');
    out.push(`vlmkit_requests_running ${this.running}`);
    out.push('# HELP vlmkit_decode_steps_total Batched decode steps run.', '# TYPE vlmkit_decode_steps_total counter');
    out.push(`vlmkit_decode_steps_total ${this.decodeSteps}`);
    out.push('# HELP vlmkit_decode_tokens_total Tokens made by batched decode steps (one per running sequence per step).', '# TYPE vlmkit_decode_tokens_total counter');
    out.push(`vlmkit_decode_tokens_total ${this.decodeTokens}`);
    out.push('# HELP vlmkit_decode_seconds_total Time spent in batched decode steps (prefills excluded).', '# TYPE vlmkit_decode_seconds_total counter');
    out.push(`vlmkit_decode_seconds_total ${this.decodeSeconds}`);
    out.push('# HELP vlmkit_time_to_first_token_seconds From a request arriving to its first generated token.', '# TYPE vlmkit_time_to_first_token_seconds histogram');
    TTFT_BUCKETS.forEach((b, i) => out.push(`vlmkit_time_to_first_token_seconds_bucket{le="${b}"} ${this.ttftCounts[i]}`));
    out.push(`vlmkit_time_to_first_token_seconds_bucket{le="+Inf"} ${this.ttftCount}`);
    out.push(`vlmkit_time_to_first_token_seconds_sum ${this.ttftSum}`);
    out.push(`vlmkit_time_to_first_token_seconds_count ${this.ttftCount}`);
    out.push('# HELP vlmkit_cached_prompt_tokens_total Prompt tokens taken from the prefix cache instead of computed.', '# TYPE vlmkit_cached_prompt_tokens_total counter');
    out.push(`vlmkit_cached_prompt_tokens_total ${this.cachedTokens}`);
    const pc = this.prefixCache;
    if (pc) {
      out.push('# HELP vlmkit_prefix_cache_hits_total Prompts that reused a cached prefix.', '# TYPE vlmkit_prefix_cache_hits_total counter');
      out.push(`vlmkit_prefix_cache_hits_total ${pc.hits}`);
      out.push('# HELP vlmkit_prefix_cache_misses_total Prompts that found no cached prefix.', '# TYPE vlmkit_prefix_cache_misses_total counter');
      out.push(`vlmkit_prefix_cache_misses_total ${pc.misses}`);
      out.push('# HELP vlmkit_prefix_cache_evictions_total Cached prefixes dropped for room (--prefix-cache-mb).', '# TYPE vlmkit_prefix_cache_evictions_total counter');
      out.push(`vlmkit_prefix_cache_evictions_total ${pc.evictions}`);
      out.push('# HELP vlmkit_prefix_cache_bytes Bytes of keys and values the prefix cache holds.', '# TYPE vlmkit_prefix_cache_bytes gauge');
      out.push(`vlmkit_prefix_cache_bytes ${pc.bytes}`);
      out.push('# HELP vlmkit_prefix_cache_entries Prompts the prefix cache holds.', '# TYPE vlmkit_prefix_cache_entries gauge');
      out.push(`vlmkit_prefix_cache_entries ${pc.size}`);
    }
    return out.join('\n') + '\n';
  }
}
