// vlmkit serve: an OpenAI-compatible HTTP server on node:http. Routes: POST /v1/chat/completions (JSON or
// server-sent events), GET /v1/models, GET /health, GET /metrics, and the web playground at GET / (playground.ts).
// Requests share the engine's decode steps (continuous batching, queue.ts) or wait in its queue; each has a time
// limit and an AbortSignal that fires when its client hangs up, which takes it out of the queue or out of the batch
// at the next step. Whatever a client sends ends as an answer or an OpenAI error body.
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Vlm } from '../api.js';
import type { TokenLogprobs } from '../generate/logprobs.js';
import { PrefixCache } from '../generate/prefix-cache.js';
import { tokenBytesTable } from '../generate/token-bytes.js';
import { complete, finishReason } from './completion.js';
import { ApiError, badRequest, toApiError } from './errors.js';
import { fetchImage } from './media.js';
import { Metrics } from './metrics.js';
import { isPlaygroundPath, sendPlaygroundFile } from './playground.js';
import { RequestQueue } from './queue.js';
import { parseChatRequest, type ChatRequest, type ServeLimits } from './request.js';

export interface ServeOptions {
  vlm: Vlm;
  /** the name clients give as "model" (GET /v1/models lists it) */
  modelId: string;
  limits: ServeLimits;
  /** the folder file:// image URLs may read from */
  mediaPath?: string;
  /** when set, /v1/* needs "Authorization: Bearer <apiKey>" */
  apiKey?: string;
  /** MiB of prompt prefixes kept for reuse between requests (0 = off; default DEFAULT_PREFIX_CACHE_MB) */
  prefixCacheMb?: number;
  /** where server-side failures are reported (a 500's cause never goes to the client) */
  log?: (line: string) => void;
}

export interface RunningServer {
  server: Server;
  /** http://host:port */
  url: string;
  metrics: Metrics;
  close(): Promise<void>;
}

/** The prefix cache's default size: a few dozen image prompts of SmolVLM-256M (about 46 KiB of keys and values a token). */
export const DEFAULT_PREFIX_CACHE_MB = 512;

/** OpenAI's logprobs entry of one token: its text, log-probability, UTF-8 bytes, and the likeliest alternatives. */
export interface LogprobEntry {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

/** Defaults sized for one machine serving a small model; every one has a flag (cli/serve.ts). */
export function defaultLimits(contextTokens: number): ServeLimits {
  return {
    maxBodyBytes: 32 * 2 ** 20,
    maxImages: 8,
    maxImageBytes: 16 * 2 ** 20,
    maxImagePixels: 40_000_000,
    maxPromptTokens: contextTokens,
    maxTokens: 2048,
    maxN: 8,
    maxQueue: 64,
    maxBatch: 16,
    requestTimeoutMs: 600_000,
    fetchTimeoutMs: 10_000,
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

/** The request body, refused (413) past `limit` bytes without keeping more than that in memory. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () => new ApiError(413, `the request body is over this server's limit of ${limit} bytes (--max-body-bytes); send smaller or fewer images`, { code: 'request_too_large' });
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      n += c.length;
      if (n > limit) {
        done = true;
        chunks.length = 0;
        reject(tooLarge());
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!done) resolve(Buffer.concat(chunks, n));
      done = true;
    });
    req.on('error', (e) => {
      if (!done) reject(e);
      done = true;
    });
    req.on('close', () => {
      if (!done) reject(new ApiError(400, 'the client closed the connection before the body arrived', { code: 'client_closed' }));
      done = true;
    });
  });
}

function authorized(req: IncomingMessage, key: string): boolean {
  const got = Buffer.from(req.headers.authorization ?? '');
  const want = Buffer.from(`Bearer ${key}`);
  return got.length === want.length && timingSafeEqual(got, want);
}

/** An SSE event; false once the client is gone. */
function sse(res: ServerResponse, data: unknown): boolean {
  if (res.destroyed || res.writableEnded) return false;
  res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
  return true;
}

export function createServeHandler(o: ServeOptions): { handle: (req: IncomingMessage, res: ServerResponse) => void; metrics: Metrics; dispose: () => void } {
  const prefixCache = new PrefixCache((o.prefixCacheMb ?? DEFAULT_PREFIX_CACHE_MB) * 2 ** 20);
  const metrics = new Metrics(prefixCache);
  const queue = new RequestQueue(o.vlm.model, o.limits.maxBatch, o.limits.maxQueue, metrics, prefixCache);
  const bytesOf = tokenBytesTable(o.vlm.tokenizer, o.vlm.model.vocabSize);
  const tokenFace = (id: number) => {
    // special tokens have no bytes of their own in a byte-level vocabulary: their name stands for them
    const b = bytesOf[id] ?? Buffer.from(o.vlm.tokenizer.idToToken(id) ?? '', 'utf8');
    return { token: Buffer.from(b).toString('utf8'), bytes: Array.from(b) };
  };
  /** the OpenAI entry of a generated token (undefined for an end of sequence, which is not part of the answer) */
  const logprobEntry = (tokenId: number, lp: TokenLogprobs | undefined, eos: boolean): LogprobEntry | undefined =>
    lp && !eos ? { ...tokenFace(tokenId), logprob: lp.logprob, top_logprobs: lp.top.map((t) => ({ ...tokenFace(t.tokenId), logprob: t.logprob })) } : undefined;
  const created = Math.floor(Date.now() / 1000);
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));

  function modelCard() {
    return { id: o.modelId, object: 'model', created, owned_by: 'vlmkit', input_modalities: ['text', 'image'], output_modalities: ['text'], max_model_len: o.vlm.model.maxPositions };
  }

  async function chatCompletions(req: IncomingMessage, res: ServerResponse, signal: AbortSignal, t0: number): Promise<number> {
    const raw = await readBody(req, o.limits.maxBodyBytes);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      throw badRequest(null, `the request body is not valid JSON (${(e as Error).message}); send a JSON object with "model" and "messages"`, 'invalid_json');
    }
    const r = parseChatRequest(body, o.limits);
    if (r.model !== o.modelId) {
      throw new ApiError(404, `the model "${r.model}" does not exist on this server; it serves "${o.modelId}" (GET /v1/models)`, { param: 'model', code: 'model_not_found' });
    }
    const images: Uint8Array[] = [];
    for (const ref of r.images) images.push(await fetchImage(ref, { mediaPath: o.mediaPath, limits: o.limits }, signal));
    return run(r, images, res, signal, t0);
  }

  async function run(r: ChatRequest, images: Uint8Array[], res: ServerResponse, signal: AbortSignal, t0: number): Promise<number> {
    if (signal.aborted) throw signal.reason;
    const id = `chatcmpl-${randomUUID().replace(/-/g, '')}`;
    const createdAt = Math.floor(Date.now() / 1000);
    const base = { id, object: 'chat.completion.chunk', created: createdAt, model: o.modelId };
    const usageNull = r.includeUsage ? { usage: null } : {};
    const it = complete(o.vlm, queue, r, images, o.limits, signal);
    // the prompt pass runs in the first next(): its failures are still plain HTTP errors
    let step = await it.next();
    metrics.firstToken((performance.now() - t0) / 1000);
    if (r.stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      for (let i = 0; i < r.n; i++) sse(res, { ...base, choices: [{ index: i, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], ...usageNull });
    }
    const rowLogprobs: LogprobEntry[][] = Array.from({ length: r.n }, () => []);
    while (!step.done) {
      const ev = step.value;
      const lp = logprobEntry(ev.tokenId, ev.logprobs, ev.finishReason === 'eos');
      if (lp) rowLogprobs[ev.row]!.push(lp);
      if (r.stream) {
        if (ev.text || lp) sse(res, { ...base, choices: [{ index: ev.row, delta: { content: ev.text }, logprobs: lp ? { content: [lp], refusal: null } : null, finish_reason: null }], ...usageNull });
        if (ev.finishReason && ev.finishReason !== 'aborted') {
          sse(res, { ...base, choices: [{ index: ev.row, delta: {}, logprobs: null, finish_reason: finishReason(ev.finishReason) }], ...usageNull });
        }
      }
      step = await it.next();
    }
    const { out, promptTokens } = step.value;
    const completionTokens = out.rows.reduce((s, row) => s + row.tokenIds.length, 0);
    metrics.promptTokens += promptTokens;
    metrics.completionTokens += completionTokens;
    const cached = out.timings.reusedTokens;
    metrics.cachedTokens += cached;
    const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens, prompt_tokens_details: { cached_tokens: cached } };
    if (r.stream) {
      if (r.includeUsage) sse(res, { ...base, choices: [], usage });
      sse(res, '[DONE]');
      res.end();
    } else {
      sendJson(res, 200, {
        id,
        object: 'chat.completion',
        created: createdAt,
        model: o.modelId,
        choices: out.rows.map((row, i) => ({
          index: i,
          message: { role: 'assistant', content: row.text, refusal: null },
          logprobs: r.topLogprobs === undefined ? null : { content: rowLogprobs[i], refusal: null },
          finish_reason: finishReason(row.finishReason),
        })),
        usage,
      });
    }
    return 200;
  }

  async function route(req: IncomingMessage, res: ServerResponse, signal: AbortSignal, t0: number): Promise<number> {
    const path = (req.url ?? '/').split('?')[0]!;
    const method = req.method ?? 'GET';
    const allow = (m: string) => {
      if (method !== m) throw new ApiError(405, `${path} takes ${m}, not ${method}`, { code: 'method_not_allowed' });
    };
    if (path === '/health') {
      allow('GET');
      sendJson(res, 200, { status: 'ok' });
      return 200;
    }
    if (path === '/metrics') {
      allow('GET');
      const text = metrics.text();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return 200;
    }
    if (isPlaygroundPath(path)) {
      // the page itself holds no secret: with --api-key its requests to /v1/* are refused like any other
      if (method !== 'HEAD') allow('GET');
      await sendPlaygroundFile(path, res, method === 'HEAD');
      return 200;
    }
    if (path.startsWith('/v1/') && o.apiKey !== undefined && !authorized(req, o.apiKey)) {
      throw new ApiError(401, 'a valid API key is needed: send "Authorization: Bearer <key>" with the key the server was started with (--api-key)', { type: 'authentication_error', code: 'invalid_api_key' });
    }
    if (path === '/v1/models') {
      allow('GET');
      sendJson(res, 200, { object: 'list', data: [modelCard()] });
      return 200;
    }
    if (path.startsWith('/v1/models/')) {
      allow('GET');
      let want: string;
      try {
        want = decodeURIComponent(path.slice('/v1/models/'.length));
      } catch {
        throw badRequest(null, `${path} is not a valid URL path (a broken %-escape); GET /v1/models lists the model`);
      }
      if (want !== o.modelId) throw new ApiError(404, `the model "${want}" does not exist on this server; it serves "${o.modelId}"`, { param: 'model', code: 'model_not_found' });
      sendJson(res, 200, modelCard());
      return 200;
    }
    if (path === '/v1/chat/completions') {
      allow('POST');
      return chatCompletions(req, res, signal, t0);
    }
    throw new ApiError(404, `no route ${method} ${path}; this server has POST /v1/chat/completions, GET /v1/models, GET /health, GET /metrics and the playground at GET /`, { code: 'not_found' });
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const t0 = performance.now();
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(new ApiError(408, `the request ran past this server's time limit of ${o.limits.requestTimeoutMs / 1000} s (--request-timeout); ask for fewer tokens or try again when it is less busy`, { code: 'request_timeout' })), o.limits.requestTimeoutMs);
    // a broken connection is handled through 'close' below; its error must not end the process
    res.on('error', () => undefined);
    // a client that hangs up frees its place in the queue, or its generation at the next token
    res.on('close', () => {
      clearTimeout(timer);
      if (!res.writableFinished) ctl.abort(new ApiError(499, 'the client closed the connection', { code: 'client_closed' }));
    });
    const endpoint = (req.url ?? '/').split('?')[0]!.replace(/^\/v1\/models\/.*/, '/v1/models/{id}');
    const known = isPlaygroundPath(endpoint) ? 'playground' : ['/health', '/metrics', '/v1/models', '/v1/models/{id}', '/v1/chat/completions'].includes(endpoint) ? endpoint : 'other';
    route(req, res, ctl.signal, t0).then(
      (status) => metrics.request(known, status),
      (e: unknown) => {
        const err = toApiError(e);
        if (err.status === 500) log(`vlmkit serve: ${req.method} ${req.url} failed: ${(e as Error)?.stack ?? e}`);
        metrics.request(known, err.status);
        if (!res.headersSent) {
          // a refused upload is not read further: the connection closes after the answer
          sendJson(res, err.status, err.body(), err.status === 413 ? { connection: 'close' } : {});
        } else if (!res.writableEnded) {
          sse(res, err.body());
          sse(res, '[DONE]');
          res.end();
        }
      },
    ).finally(() => clearTimeout(timer));
  }

  return { handle, metrics, dispose: () => prefixCache.clear() };
}

/** Starts listening; port 0 picks a free port (see `url`). */
export async function startServer(o: ServeOptions & { host: string; port: number }): Promise<RunningServer> {
  const { handle, metrics, dispose } = createServeHandler(o);
  const server = createServer(handle);
  // a slow or silent client cannot hold a connection for ever
  server.headersTimeout = 30_000;
  server.requestTimeout = Math.min(o.limits.requestTimeoutMs, 300_000);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return {
    server,
    url: `http://${host}:${a.port}`,
    metrics,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          dispose();
          resolve();
        });
      }),
  };
}
