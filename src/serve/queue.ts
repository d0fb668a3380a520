// The engine's front door: requests go to the continuous batcher (they share decode steps, see
// generate/continuous.ts) while the batch has room for their rows, and wait in its queue, first come first
// served, while it does not. A full queue is a 429; a request whose client left (or whose time ran out) while
// waiting leaves the queue at once, and one that leaves while running frees its rows at the next step.
import { ContinuousBatcher, type SubmitOptions } from '../generate/continuous.js';
import type { GenerationEvent, GenerationOutput } from '../generate/generate.js';
import type { PrefixCache } from '../generate/prefix-cache.js';
import type { CausalLM, ModelInputs } from '../generate/types.js';
import { ApiError } from './errors.js';
import type { Metrics } from './metrics.js';

export class RequestQueue {
  private readonly batcher: ContinuousBatcher;

  constructor(lm: CausalLM, readonly maxBatch: number, private readonly maxQueue: number, metrics: Metrics, prefixCache?: PrefixCache) {
    this.batcher = new ContinuousBatcher(lm, {
      maxBatch,
      prefixCache,
      onChange: ({ waiting, running }) => {
        metrics.queueDepth = waiting;
        metrics.running = running;
      },
      onStep: (rows, seconds) => metrics.decodeStep(rows, seconds),
    });
  }

  /** Generates `opts.n` rows for one unpadded prompt among the other requests; a 429 when it would wait in a full queue. */
  generate(inputs: ModelInputs, opts: SubmitOptions): AsyncGenerator<GenerationEvent, GenerationOutput, undefined> {
    const waiting = this.batcher.waiting;
    if (waiting >= this.maxQueue && this.batcher.wouldWait(opts.n ?? 1)) {
      throw new ApiError(429, `the server is busy: ${waiting} requests are already waiting (--max-queue); try again shortly`, { type: 'rate_limit_error', code: 'queue_full' });
    }
    return this.batcher.submit(inputs, opts);
  }

  get depth(): number {
    return this.batcher.waiting;
  }
}
