// `vlmkit serve`: the model behind an OpenAI-compatible HTTP API (src/serve). Runs until Ctrl-C / SIGTERM.
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { statSync } from 'node:fs';
import { inspectModel, loadVlm } from '../api.js';
import { defaultLimits, startServer } from '../serve/server.js';
import type { ServeLimits } from '../serve/request.js';
import { applyAdapter } from './ask.js';
import { argError, MODEL_FLAG_USAGE, modelDir, parsing, QUANT_FLAG_USAGE, quantOption } from './args.js';
import { type CliIo, status } from './io.js';

export const SERVE_USAGE = `usage: vlmkit serve [--model <dir>] [--port 8080] [--host 127.0.0.1] [options]
${MODEL_FLAG_USAGE}
  --port N                  port to listen on (default 8080; 0 picks a free one)
  --host ADDR               address to listen on (default 127.0.0.1, this machine only)
  --api-key KEY             require "Authorization: Bearer KEY" on /v1/* (do set one beyond loopback)
  --model-name NAME         the name clients give as "model" (default: the model folder's name)
  --media-path DIR          let image_url take file:// URLs of files under DIR (default: no local files)
  --f32                     load every weight as f32
  --adapter DIR             serve the model with a LoRA or DoRA adapter (PEFT folder, e.g. from vlmkit train)
${QUANT_FLAG_USAGE}
limits (a request past one gets a 4xx with OpenAI's error body):
  --max-body-bytes N        request body size (default 33554432)
  --max-images N            images per request (default 8)
  --max-image-bytes N       bytes of one image (default 16777216)
  --max-image-pixels N      pixels of one image, from its header (default 40000000)
  --max-prompt-tokens N     prompt tokens, images included (default: the model's context)
  --max-tokens N            the largest max_tokens a request may ask for, and the default (default 2048)
  --max-n N                 choices per request (default 8)
  --max-queue N             requests waiting for the engine before a 429 (default 64)
  --max-batch N             sequences decoded together; more wait in the queue (default 16)
  --request-timeout S       seconds a request may take, queue included (default 600)
  --fetch-timeout S         seconds for downloading an http(s) image (default 10)
  --prefix-cache-mb N       MiB of computed prompt prefixes kept for reuse (same images, same conversation so
                            far); least recently used out first (default 512; 0 = off)
Endpoints: POST /v1/chat/completions, GET /v1/models, GET /health, GET /metrics (Prometheus).`;

const LIMIT_FLAGS: Record<string, keyof ServeLimits> = {
  'max-body-bytes': 'maxBodyBytes',
  'max-images': 'maxImages',
  'max-image-bytes': 'maxImageBytes',
  'max-image-pixels': 'maxImagePixels',
  'max-prompt-tokens': 'maxPromptTokens',
  'max-tokens': 'maxTokens',
  'max-n': 'maxN',
  'max-queue': 'maxQueue',
  'max-batch': 'maxBatch',
};

function int(flag: string, v: string, min: number): number {
  const x = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(x) || x < min) throw argError(`--${flag} takes an integer >= ${min}, got ${JSON.stringify(v)}`);
  return x;
}

function seconds(flag: string, v: string): number {
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || x <= 0 || x > 86_400) throw argError(`--${flag} takes a number of seconds in (0, 86400], got ${JSON.stringify(v)}`);
  return Math.round(x * 1000);
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export async function serve(argv: string[], io: CliIo): Promise<number> {
  const options = {
    model: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, 'api-key': { type: 'string' },
    'model-name': { type: 'string' }, 'media-path': { type: 'string' }, f32: { type: 'boolean' }, quant: { type: 'string' }, adapter: { type: 'string' },
    'request-timeout': { type: 'string' }, 'fetch-timeout': { type: 'string' }, 'prefix-cache-mb': { type: 'string' },
    ...Object.fromEntries(Object.keys(LIMIT_FLAGS).map((k) => [k, { type: 'string' }])),
  } as const;
  const { values } = parsing(SERVE_USAGE, () => parseArgs({ args: argv, options, allowPositionals: false, strict: true }));
  const v = values as Record<string, string | boolean | undefined>;
  const dir = modelDir(values);
  const quant = quantOption(values);
  const port = values.port === undefined ? 8080 : int('port', values.port, 0);
  if (port > 65535) throw argError(`--port takes 0..65535, got ${port}`);
  const host = values.host ?? '127.0.0.1';
  const apiKey = values['api-key'];
  if (apiKey !== undefined && !apiKey.trim()) throw argError('--api-key must not be empty; leave it out to serve without a key (loopback only)');
  const mediaPath = values['media-path'];
  if (mediaPath !== undefined && !statSync(mediaPath, { throwIfNoEntry: false })?.isDirectory()) {
    throw argError(`--media-path ${mediaPath} is not a folder; give the folder whose images clients may name with file:// URLs`);
  }
  // every flag is checked before the model loads
  const given: Partial<ServeLimits> = {};
  for (const [flag, key] of Object.entries(LIMIT_FLAGS)) {
    const x = v[flag];
    if (typeof x === 'string') given[key] = int(flag, x, 1);
  }
  if (values['request-timeout'] !== undefined) given.requestTimeoutMs = seconds('request-timeout', values['request-timeout']);
  if (values['fetch-timeout'] !== undefined) given.fetchTimeoutMs = seconds('fetch-timeout', values['fetch-timeout']);
  const prefixCacheMb = values['prefix-cache-mb'] === undefined ? undefined : int('prefix-cache-mb', values['prefix-cache-mb'], 0);
  const model = inspectModel(dir);
  status(io, `loading ${dir} ...`);
  const vlm = await loadVlm(model, { dtype: values.f32 ? 'f32' : undefined, quant });
  if (values.adapter !== undefined) {
    status(io, `adapter ${values.adapter}`);
    // a bad adapter folder is one line before anything listens
    await applyAdapter(vlm.model, values.adapter).catch((e: unknown) => {
      vlm.dispose();
      throw e;
    });
  }
  const limits = { ...defaultLimits(vlm.model.maxPositions), ...given };
  const modelId = values['model-name'] ?? basename(vlm.dir);
  const running = await startServer({ vlm, modelId, limits, mediaPath, apiKey, host, port, prefixCacheMb }).catch((e: NodeJS.ErrnoException) => {
    vlm.dispose();
    if (e.code === 'EADDRINUSE') throw argError(`port ${port} on ${host} is in use; pick another with --port (0 picks a free one)`);
    if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND') throw argError(`--host ${host} is not an address of this machine`);
    throw e;
  });
  if (!LOOPBACK.has(host) && apiKey === undefined) {
    io.stderr.write(`vlmkit serve: warning: listening on ${host} without --api-key: anyone who can reach this port can use the model\n`);
  }
  // the one line a script waits for (tests read the port from it)
  io.stdout.write(`vlmkit serve: ${modelId} on ${running.url} (POST /v1/chat/completions)\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await running.close();
  vlm.dispose();
  return 0;
}
