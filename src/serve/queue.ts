// The requests waiting for the engine, first come first served, one at a time: the engine runs one generation
// (one batch) at a time, and a queue keeps each request's answer the one it gets alone. A full queue is a 429; a
// request whose client left (or whose time ran out) while waiting leaves the queue at once.
import { ApiError } from './errors.js';
import type { Metrics } from './metrics.js';

interface Waiting {
  start: () => void;
  signal: AbortSignal;
}

export class RequestQueue {
  private readonly waiting: Waiting[] = [];
  private busy = false;

  constructor(private readonly maxQueue: number, private readonly metrics: Metrics) {}

  /** Runs `job` when the engine is free and returns what it returns; `signal` takes it out of the queue. */
  async run<T>(signal: AbortSignal, job: () => Promise<T>): Promise<T> {
    if (signal.aborted) throw signal.reason;
    if (this.busy) {
      if (this.waiting.length >= this.maxQueue) {
        throw new ApiError(429, `the server is busy: ${this.waiting.length} requests are already waiting (--max-queue); try again shortly`, { type: 'rate_limit_error', code: 'queue_full' });
      }
      await new Promise<void>((resolve, reject) => {
        const w: Waiting = {
          signal,
          start: () => {
            signal.removeEventListener('abort', onAbort);
            resolve();
          },
        };
        const onAbort = () => {
          const i = this.waiting.indexOf(w);
          if (i >= 0) this.waiting.splice(i, 1);
          this.metrics.queueDepth = this.waiting.length;
          reject(signal.reason);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        this.waiting.push(w);
        this.metrics.queueDepth = this.waiting.length;
      });
    }
    // the slot is ours (handed over by the previous job, or free)
    this.busy = true;
    this.metrics.running = 1;
    try {
      return await job();
    } finally {
      this.next();
    }
  }

  private next(): void {
    const w = this.waiting.shift();
    this.metrics.queueDepth = this.waiting.length;
    if (w) w.start();
    else {
      this.busy = false;
      this.metrics.running = 0;
    }
  }

  get depth(): number {
    return this.waiting.length;
  }
}
