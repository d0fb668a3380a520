// Continuous batching: many generations share the model's decode steps. Each request's prompt runs alone (its
// own prefill into its own cache); its rows then join the running batch at the next step, and a row that ends
// (end of sequence, max tokens, a stop string, the end of the context, its client gone) leaves it, without the
// others waiting for anything but the step. One step runs every running row's next token in one forward of the
// text model: a GEMM per weight instead of a GEMV per sequence, which is where a CPU's throughput comes from.
//
// The rows of the batch sit in one KV cache of one length: each row's positions are right-aligned to end at the
// cache's length and the columns before them are left padding that the attention mask hides (the model's own
// left-padded batching). The cache is rebuilt from its rows (KVCache.gather) whenever rows join or leave, which
// also drops the padding nobody needs any more; its size is bounded by the batch's rows times the longest row's
// prompt plus tokens left, and it is freed when the batch empties.
//
// A prompt pass starts from the longest prefix the prefix cache holds (prefix-cache.ts), when one is given and the
// request opts in: its positions are copied in and only the rest of the prompt runs.
//
// Sampling is each request's own (temperature, top-p, seed, stop strings, logprobs, a JSON constraint). Greedy
// answers are the ones a request gets alone as tokens; the logits of a batched step may differ from a one-row step
// in the last bits of f32 (a GEMM sums in another order than a GEMV), see docs/serving.md.
import { VlmkitError } from '../errors.js';
import { argmax as argmaxOp, tensor } from '../engine/index.js';
import type { Tensor } from '../engine/tensor.js';
import type { StreamDecoder, Tokenizer } from '../processing/tokenizer.js';
import type { GenerateOptions, GenerationEvent, GenerationOutput } from './generate.js';
import { JsonConstraint } from './json-mode.js';
import { processLogits, resolveSampling, type ResolvedSampling } from './logits.js';
import { tokenLogprobs } from './logprobs.js';
import type { PrefixCache, PrefixKey } from './prefix-cache.js';
import { greedySampler, multinomialSampler, type Sampler } from './sampling.js';
import { StopStringMatcher } from './stopping.js';
import type { CausalLM, FinishReason, KVCache, ModelInputs } from './types.js';

export interface BatcherOptions {
  /** rows (sequences) decoded together at most; requests wait for room beyond it */
  maxBatch: number;
  /** called whenever the number of waiting or running requests changes */
  onChange?: (state: { waiting: number; running: number }) => void;
  /** called after each batched decode step: its rows (tokens made) and its seconds */
  onStep?: (rows: number, seconds: number) => void;
  /** prompt prefixes shared between requests (see prefix-cache.ts); requests opt in with SubmitOptions.prefix */
  prefixCache?: PrefixCache;
}

export interface SubmitOptions extends Omit<GenerateOptions, 'promptCache' | 'onImageTile'> {
  tokenizer?: Tokenizer;
  /** rows (choices) generated from the one prompt, each with its own sampler (seed + row) */
  n?: number;
  /** report each token's log-probability and this many alternatives (0..20); undefined: none */
  logprobs?: number;
  /** constrain the output to one JSON object (json-mode.ts; needs the tokenizer) */
  json?: boolean;
  /** the prompt's key in the prefix cache (its images' hashes and where they start); undefined: not cached */
  prefix?: Omit<PrefixKey, 'ids'>;
}

interface Seq {
  job: Job;
  /** the row (choice) of its request */
  index: number;
  tokens: number[];
  sampler: Sampler;
  decoder: StreamDecoder | null;
  stop: StopStringMatcher;
  json: JsonConstraint | null;
  finish: FinishReason | null;
  /** the cache that holds its positions: its prefill's until it joins the batch, then the batch's */
  cache: KVCache;
  row: number;
  /** the first cache column of its positions (the columns before it are padding) */
  start: number;
}

interface Job {
  inputs: ModelInputs;
  promptIds: number[];
  n: number;
  sampling: ResolvedSampling;
  plainGreedy: boolean;
  maxNew: number;
  eos: Set<number>;
  stopStrings: readonly string[];
  tokenizer: Tokenizer | null;
  logprobs: number | undefined;
  json: boolean;
  prefix: PrefixKey | null;
  /** prompt positions taken from the prefix cache */
  reused: number;
  signal: AbortSignal | null;
  seqs: Seq[];
  events: GenerationEvent[];
  wake: (() => void) | null;
  error: unknown;
  result: GenerationOutput | null;
  /** the consumer stopped reading */
  gone: boolean;
  tSubmit: number;
  tFirst: number;
  decodeTokens: number;
}

function genError(message: string): VlmkitError {
  return new VlmkitError('E_GENERATE', message);
}

const nextTick = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * Positions of room the batch cache gets beyond what it holds, at most: a request's max_tokens is an upper bound
 * (2048 by default in the server) that most answers never reach, and 16 rows x 2048 positions of a 30-layer
 * model's keys and values would be allocated and zeroed at every rebuild. The cache grows by this much when full.
 */
const ROOM = 128;

export class ContinuousBatcher {
  private readonly pending: Job[] = [];
  /** rows in the batch cache, in its row order (finished ones leave at once; the cache is rebuilt before the next step) */
  private batch: Seq[] = [];
  /** rows prefilled since the last rebuild, each in its own request's cache */
  private joining: Seq[] = [];
  private cache: KVCache | null = null;
  /** positions the batch cache has room for */
  private capacity = 0;
  private dirty = false;
  private loop: Promise<void> | null = null;
  private readonly lm: CausalLM;
  private readonly maxBatch: number;
  private readonly onChange: BatcherOptions['onChange'];
  private readonly onStep: BatcherOptions['onStep'];
  private readonly prefixCache: PrefixCache | null;
  /** whether the model's caches can grow in place (else a rebuild allots all the room the rows may need) */
  private readonly reserves: boolean;

  constructor(lm: CausalLM, o: BatcherOptions) {
    if (!Number.isInteger(o.maxBatch) || o.maxBatch < 1) throw new VlmkitError('E_OPTION', `max batch must be an integer >= 1, got ${o.maxBatch}`);
    if (!lm.gatherCache) throw genError('this model cannot batch generations continuously (its cache has no gatherCache); run one request at a time');
    this.lm = lm;
    this.maxBatch = o.maxBatch;
    this.onChange = o.onChange;
    this.onStep = o.onStep;
    this.prefixCache = o.prefixCache && o.prefixCache.maxBytes > 0 && lm.prefillFrom && lm.resumePoint ? o.prefixCache : null;
    const probe = lm.createCache(1, 1);
    this.reserves = typeof probe.reserve === 'function';
    probe.dispose();
  }

  /** requests waiting for their prefill */
  get waiting(): number {
    return this.pending.length;
  }

  /** requests with rows in the batch */
  get running(): number {
    return new Set([...this.batch, ...this.joining].map((s) => s.job)).size;
  }

  /** Whether `n` more rows would have to wait (the batch and the requests before them leave no room). */
  wouldWait(n: number): boolean {
    const rows = this.batch.length + this.joining.length + this.pending.reduce((s, j) => s + j.n, 0);
    return rows + n > this.maxBatch;
  }

  /**
   * Generates for one prompt (`inputs`: one unpadded row; not disposed here, and kept alive by the caller until
   * this ends) among whatever else runs. Events as generateStream's; the return value holds every row.
   */
  async *submit(inputs: ModelInputs, opts: SubmitOptions = {}): AsyncGenerator<GenerationEvent, GenerationOutput, undefined> {
    const job = this.makeJob(inputs, opts);
    const onAbort = () => {
      const i = this.pending.indexOf(job);
      if (i >= 0) {
        this.pending.splice(i, 1);
        this.fail(job, job.signal!.reason ?? genError('aborted'));
        this.changed();
      }
    };
    job.signal?.addEventListener('abort', onAbort, { once: true });
    this.pending.push(job);
    this.changed();
    this.start();
    try {
      let next = 0;
      for (;;) {
        while (next < job.events.length) yield job.events[next++]!;
        job.events.length = next = 0;
        if (job.error !== null) throw job.error;
        if (job.result) return job.result;
        await new Promise<void>((r) => {
          job.wake = r;
        });
      }
    } finally {
      job.signal?.removeEventListener('abort', onAbort);
      if (!job.result && job.error === null) {
        // the consumer left early: out of the queue now, out of the batch before the next step
        job.gone = true;
        const i = this.pending.indexOf(job);
        if (i >= 0) {
          this.pending.splice(i, 1);
          this.changed();
        }
      }
    }
  }

  private makeJob(inputs: ModelInputs, opts: SubmitOptions): Job {
    const sampling = resolveSampling(opts);
    const maxNew = opts.maxNewTokens ?? 256;
    if (!Number.isInteger(maxNew) || maxNew < 1) throw new VlmkitError('E_OPTION', `max_new_tokens must be an integer >= 1, got ${maxNew}`);
    const n = opts.n ?? 1;
    if (!Number.isInteger(n) || n < 1 || n > this.maxBatch) throw new VlmkitError('E_OPTION', `n must be an integer in 1..${this.maxBatch} (the max batch), got ${n}`);
    const { inputIds, attentionMask } = inputs;
    if (inputIds.rank !== 2 || inputIds.shape[0] !== 1 || inputIds.shape[1] === 0) throw genError(`a batched request is one non-empty row of ids, got shape [${inputIds.shape}]`);
    const promptIds = inputIds.toArray();
    if (attentionMask.toArray().some((m) => !m)) throw genError('a batched request is one unpadded row (its attention mask has zeros); encode it alone');
    const lp = opts.logprobs;
    if (lp !== undefined && (!Number.isInteger(lp) || lp < 0 || lp > 20)) throw new VlmkitError('E_OPTION', `top logprobs must be an integer in 0..20, got ${lp}`);
    if (opts.json && !opts.tokenizer) throw genError('JSON output needs the tokenizer (the bytes of each token)');
    if (opts.json && !opts.eosTokenIds?.length) throw new VlmkitError('E_OPTION', 'JSON output needs an end-of-sequence token to end the answer once the object closes; this model has none configured');
    if (promptIds.length >= this.lm.maxPositions) {
      throw new VlmkitError('E_CONTEXT', `the prompt has ${promptIds.length} tokens but the model's context holds ${this.lm.maxPositions}; shorten the prompt, use fewer or smaller images (or turn image splitting off)`);
    }
    return {
      inputs, promptIds, n, sampling, maxNew,
      plainGreedy: !sampling.doSample && sampling.repetitionPenalty === 1 && sampling.minNewTokens === 0 && !opts.json,
      eos: new Set(opts.eosTokenIds ?? []),
      stopStrings: opts.stopStrings ?? [],
      tokenizer: opts.tokenizer ?? null,
      logprobs: lp,
      json: opts.json ?? false,
      prefix: opts.prefix ? { ...opts.prefix, ids: promptIds } : null,
      reused: 0,
      signal: opts.signal ?? null,
      seqs: [], events: [], wake: null, error: null, result: null, gone: false,
      tSubmit: performance.now(), tFirst: 0, decodeTokens: 0,
    };
  }

  private changed(): void {
    this.onChange?.({ waiting: this.pending.length, running: this.running });
  }

  private notify(job: Job): void {
    const w = job.wake;
    job.wake = null;
    w?.();
  }

  private fail(job: Job, e: unknown): void {
    if (job.result || job.error !== null) return;
    job.error = e ?? genError('the generation failed');
    this.notify(job);
  }

  private start(): void {
    if (this.loop) return;
    this.loop = this.run().finally(() => {
      this.loop = null;
      if (this.pending.length) this.start();
    });
  }

  private async run(): Promise<void> {
    for (;;) {
      this.dropLeavers();
      await this.admit();
      this.dropLeavers();
      if (!this.batch.length && !this.joining.length) {
        this.rebuild();
        if (!this.pending.length) return;
        continue;
      }
      try {
        if (this.dirty) this.rebuild();
        this.step();
      } catch (e) {
        // a failed step leaves the batch cache in no known state: every running request fails with it
        const rows = [...this.batch, ...this.joining];
        for (const s of rows) this.fail(s.job, e);
        for (const c of new Set([...rows.map((s) => s.cache), ...(this.cache ? [this.cache] : [])])) c.dispose();
        this.cache = null;
        this.batch = [];
        this.joining = [];
        this.dirty = false;
      }
      this.changed();
      await nextTick();
    }
  }

  /** Rows whose request was aborted or whose consumer left are taken out (their request fails with the reason). */
  private dropLeavers(): void {
    const leaves = (s: Seq) => s.job.gone || !!s.job.signal?.aborted;
    const out = [...this.batch, ...this.joining].filter(leaves);
    if (!out.length) return;
    for (const s of out) this.fail(s.job, s.job.signal?.reason ?? genError('aborted'));
    this.batch = this.batch.filter((s) => !leaves(s));
    // a joining row still holds its own prefill cache (rebuild frees only the caches of rows it merges): free it
    // here, unless another joining row of the same request still uses it
    const dropped = this.joining.filter(leaves);
    this.joining = this.joining.filter((s) => !leaves(s));
    const kept = new Set(this.joining.map((s) => s.cache));
    for (const c of new Set(dropped.map((s) => s.cache))) if (!kept.has(c) && c !== this.cache) c.dispose();
    this.dirty = true;
    this.changed();
  }

  /** Prefills the waiting requests, first come first served, while the batch has room for their rows. */
  private async admit(): Promise<void> {
    while (this.pending.length) {
      const job = this.pending[0]!;
      if (this.batch.length + this.joining.length + job.n > this.maxBatch) return;
      this.pending.shift();
      if (job.gone || job.signal?.aborted) {
        this.fail(job, job.signal?.reason ?? genError('aborted'));
        this.changed();
        continue;
      }
      try {
        this.prefill(job);
      } catch (e) {
        this.fail(job, e);
      }
      this.changed();
      // its first tokens go out before the next prompt runs
      await nextTick();
    }
  }

  private prefill(job: Job): void {
    const T = job.promptIds.length;
    const pc = job.prefix ? this.prefixCache : null;
    const hit = pc ? pc.lookup(job.prefix!, (p) => this.lm.resumePoint!(job.promptIds, p)) : null;
    // a hit: the cached positions copied into this request's own cache, only the rest of the prompt runs
    const cache = hit ? this.lm.gatherCache!([{ cache: hit.cache, row: 0, from: 0, to: hit.length }], hit.length, T) : this.lm.createCache(1, T);
    job.reused = hit?.length ?? 0;
    let logits: Tensor;
    try {
      if (hit) logits = this.lm.prefillFrom!(job.inputs, cache, hit.length);
      else {
        const positionIds = tensor(Array.from({ length: T }, (_, i) => i), [1, T], { dtype: 'i32' });
        try {
          logits = this.lm.prefill({ ...job.inputs, positionIds }, cache);
        } finally {
          positionIds.dispose();
        }
      }
      pc?.insert(job.prefix!, () => this.lm.gatherCache!([{ cache, row: 0, from: 0, to: T }], T, T));
    } catch (e) {
      cache.dispose();
      throw e;
    }
    job.seqs = Array.from({ length: job.n }, (_, index) => ({
      job, index, tokens: [],
      sampler: job.sampling.doSample ? multinomialSampler(job.sampling.seed + index) : greedySampler(),
      decoder: job.tokenizer ? job.tokenizer.createStreamDecoder({ skipSpecialTokens: true }) : null,
      stop: new StopStringMatcher(job.stopStrings),
      json: job.json ? new JsonConstraint(job.tokenizer!, this.lm.vocabSize, job.eos.values().next().value) : null,
      finish: null, cache, row: 0, start: 0,
    }));
    try {
      this.pick(logits, job.seqs.map(() => 0), job.seqs);
    } finally {
      logits.dispose();
    }
    job.tFirst = performance.now();
    const live = job.seqs.filter((s) => !s.finish);
    if (live.length) {
      this.joining.push(...live);
      this.dirty = true;
    } else cache.dispose();
  }

  /** Each seq's next token from its row of `logits` ([rows, V]); events out, finished seqs leave the batch. */
  private pick(logits: Tensor, rowOf: readonly number[], seqs: readonly Seq[]): void {
    const V = this.lm.vocabSize;
    if (logits.rank !== 2 || logits.shape[1] !== V) throw genError(`the model returned logits of shape [${logits.shape}], expected [rows, ${V}]`);
    const scores = logits.dtype === 'f32' && logits.isContiguous() ? (logits.data as Float32Array) : logits.toFloat32Array();
    let picks: Int32Array | null = null;
    if (seqs.some((s) => s.job.plainGreedy)) {
      // every row's argmax in one native reduction (the first among ties, as torch.argmax)
      const a = argmaxOp(logits, 1);
      try {
        picks = Int32Array.from(a.toArray());
      } finally {
        a.dispose();
      }
    }
    const touched = new Set<Job>();
    seqs.forEach((s, j) => {
      const job = s.job;
      const r = rowOf[j]!;
      let tok: number;
      if (job.plainGreedy) tok = picks![r]!;
      else {
        // a copy: the processors work in place, and the rows of one prompt share their prefill's logits
        const row = scores.slice(r * V, (r + 1) * V);
        processLogits(row, job.sampling, { tokens: [...job.promptIds, ...s.tokens], generated: s.tokens.length, eosIds: job.eos });
        if (s.json) {
          const left = Math.min(job.maxNew, this.lm.maxPositions - job.promptIds.length) - s.tokens.length;
          tok = s.json.pick(row, s.sampler, left);
          s.json.accept(tok);
        } else tok = s.sampler.next(row);
      }
      const lp = job.logprobs === undefined ? undefined : tokenLogprobs(scores.subarray(r * V, (r + 1) * V), tok, job.logprobs);
      s.tokens.push(tok);
      let text = s.decoder ? s.stop.push(s.decoder.push(tok)) : '';
      if (job.eos.has(tok)) s.finish = 'eos';
      else if (s.stop.stopped) s.finish = 'stop_string';
      else if (s.tokens.length >= job.maxNew) s.finish = 'length';
      else if (job.promptIds.length + s.tokens.length >= this.lm.maxPositions) s.finish = 'context';
      if (s.finish && s.decoder) text += s.stop.flush(s.finish === 'stop_string' ? '' : s.decoder.flush());
      job.events.push({ row: s.index, tokenId: tok, text, ...(lp ? { logprobs: lp } : {}), ...(s.finish ? { finishReason: s.finish } : {}) });
      if (s.tokens.length > 1) job.decodeTokens++;
      touched.add(job);
    });
    const finished = seqs.filter((s) => s.finish);
    if (finished.length) {
      this.batch = this.batch.filter((s) => !s.finish);
      this.dirty = true;
    }
    for (const job of touched) {
      if (job.seqs.every((s) => s.finish)) this.finishJob(job);
      this.notify(job);
    }
  }

  private finishJob(job: Job): void {
    const end = performance.now();
    const prefillMs = job.tFirst - job.tSubmit;
    const decodeMs = end - job.tFirst;
    const prefillTokens = job.promptIds.length - job.reused;
    job.result = {
      rows: job.seqs.map((s) => ({ tokenIds: s.tokens, text: s.decoder ? s.stop.finalText : '', finishReason: s.finish ?? 'length' })),
      timings: {
        prefillTokens,
        prefillMs,
        prefillTokensPerSec: prefillMs > 0 ? (prefillTokens / prefillMs) * 1000 : 0,
        decodeTokens: job.decodeTokens,
        decodeMs,
        decodeTokensPerSec: decodeMs > 0 && job.decodeTokens > 0 ? (job.decodeTokens / decodeMs) * 1000 : 0,
        generatedTokens: job.seqs.reduce((s, q) => s + q.tokens.length, 0),
        reusedTokens: job.reused,
        totalMs: end - job.tSubmit,
      },
    };
  }

  /** The batch cache anew from the rows still running and the ones joining; the old caches are freed. */
  private rebuild(): void {
    if (!this.dirty) return;
    const rows = [...this.batch, ...this.joining];
    const old = new Set<KVCache>([...(this.cache ? [this.cache] : []), ...this.joining.map((s) => s.cache)]);
    let next: KVCache | null = null;
    if (rows.length) {
      const spans = rows.map((s) => ({ cache: s.cache, row: s.row, from: s.start, to: s.cache.length }));
      const length = Math.max(...spans.map((p) => p.to - p.from));
      // room for what the rows can still grow (to their max tokens or the end of the context), ROOM at a time
      // where the cache can grow later
      const grow = this.grow(rows);
      this.capacity = length + (this.reserves ? Math.min(grow, ROOM) : grow);
      next = this.lm.gatherCache!(spans, length, this.capacity);
      rows.forEach((s, i) => {
        s.start = length - (spans[i]!.to - spans[i]!.from);
        s.cache = next!;
        s.row = i;
      });
    }
    for (const c of old) c.dispose();
    this.cache = next;
    this.batch = rows;
    this.joining = [];
    this.dirty = false;
  }

  /** The most positions any of `rows` may still append: to its max tokens or to the end of the context. */
  private grow(rows: readonly Seq[]): number {
    return Math.max(...rows.map((s) => Math.min(s.job.maxNew, this.lm.maxPositions - s.job.promptIds.length) - s.tokens.length));
  }

  /** One token for every row of the batch, in one forward. */
  private step(): void {
    const cache = this.cache!;
    const rows = this.batch;
    const n = rows.length;
    const past = cache.length;
    if (past + 1 > this.capacity) {
      this.capacity = past + Math.min(this.grow(rows), ROOM);
      cache.reserve!(this.capacity);
    }
    const ids = new Int32Array(n);
    const pos = new Int32Array(n);
    const mask = new Int32Array(n * (past + 1));
    rows.forEach((s, j) => {
      ids[j] = s.tokens[s.tokens.length - 1]!;
      pos[j] = s.job.promptIds.length + s.tokens.length - 1;
      mask.fill(1, j * (past + 1) + s.start, (j + 1) * (past + 1));
    });
    const t0 = performance.now();
    const tIds = tensor(ids, [n, 1], { dtype: 'i32' });
    const tPos = tensor(pos, [n, 1], { dtype: 'i32' });
    const tMask = tensor(mask, [n, past + 1], { dtype: 'i32' });
    let logits: Tensor;
    try {
      logits = this.lm.step({ inputIds: tIds, positionIds: tPos, attentionMask: tMask }, cache);
    } finally {
      tIds.dispose();
      tPos.dispose();
      tMask.dispose();
    }
    try {
      this.pick(logits, rows.map((_, j) => j), rows);
    } finally {
      logits.dispose();
    }
    this.onStep?.(n, (performance.now() - t0) / 1000);
  }

  /** Waits until nothing runs or waits (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }
}
