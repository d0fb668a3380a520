// A served tiny SmolVLM (test/fixtures/reference/tiny-smolvlm, random weights) on a free loopback port, and small
// HTTP helpers for the serve tests.
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadVlm, type Vlm } from '../../src/api.js';
import type { ServeLimits } from '../../src/serve/request.js';
import { defaultLimits, startServer, type RunningServer, type ServeOptions } from '../../src/serve/server.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MODEL = join(ROOT, 'test', 'fixtures', 'reference', 'tiny-smolvlm');
export const IMAGES = join(ROOT, 'test', 'fixtures', 'reference', 'images');
export const MODEL_ID = 'tiny-smolvlm';

let shared: Promise<Vlm> | null = null;
/** One loaded model per test file (servers of a file share it). */
export function tinyVlm(): Promise<Vlm> {
  shared ??= loadVlm(MODEL);
  return shared;
}

export async function serveTiny(limits: Partial<ServeLimits> = {}, extra: Partial<ServeOptions> = {}): Promise<RunningServer & { vlm: Vlm }> {
  const vlm = await tinyVlm();
  const s = await startServer({
    vlm, modelId: MODEL_ID, limits: { ...defaultLimits(vlm.model.maxPositions), ...limits }, host: '127.0.0.1', port: 0,
    log: () => undefined, ...extra,
  });
  return { ...s, vlm };
}

export function dataUrl(file: string, mime = 'image/png'): string {
  return `data:${mime};base64,${readFileSync(join(IMAGES, file)).toString('base64')}`;
}

export interface Reply {
  status: number;
  headers: Headers;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
}

/** POSTs `body` (an object as JSON, or a string as is) and reads the whole answer. */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // SSE or plain text
  }
  return { status: res.status, headers: res.headers, json, text };
}

/** An OpenAI error body of `status`, its message matching `message`, `param` when given. */
export function assertApiError(r: Reply, status: number, message: RegExp, param?: string): void {
  assert.equal(r.status, status, r.text);
  assert.ok(r.json && typeof r.json.error === 'object', `an error body: ${r.text}`);
  const e = r.json.error;
  assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(typeof e.message, 'string');
  assert.match(e.message, message);
  assert.equal(typeof e.type, 'string');
  if (param !== undefined) assert.equal(e.param, param);
}

/** The metric's value from /metrics (NaN when absent, so a comparison with it fails). */
export async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.slice(name.length + 1)) : NaN;
}

export const userText = (text: string) => [{ role: 'user' as const, content: text }];

/** The official openai client on a running server (no retries: a test sees each failure as it happens). */
export function openaiClient(s: { url: string }): OpenAI {
  return new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
}
