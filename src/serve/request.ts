// A POST /v1/chat/completions body, checked field by field (OpenAI's names and types) into what the engine needs:
// chat messages with {type:'image'} parts where the images go, the image URLs in that order, and the generation
// settings. Every mistake is a 400 naming the field; a field vlmkit cannot honour is refused rather than ignored.
import type { ChatMessage, ContentPart } from '../processing/chat-template.js';
import { badRequest } from './errors.js';

export interface ServeLimits {
  /** request body bytes */
  maxBodyBytes: number;
  /** images in one request */
  maxImages: number;
  /** bytes of one image (data: URL decoded, downloaded or read) */
  maxImageBytes: number;
  /** pixels of one image (from its header, before decoding) */
  maxImagePixels: number;
  /** tokens of the expanded prompt (images included) */
  maxPromptTokens: number;
  /** the largest max_tokens a request may ask for; also the default */
  maxTokens: number;
  /** choices per request (n) */
  maxN: number;
  /** requests waiting for the engine; one more is a 429 */
  maxQueue: number;
  /** rows (sequences, n per request) decoded together; requests beyond it wait in the queue */
  maxBatch: number;
  /** a request's whole time in the server (queue, prompt, answer), ms */
  requestTimeoutMs: number;
  /** the time-out of an http(s) image download, ms */
  fetchTimeoutMs: number;
}

export interface ImageRef {
  url: string;
  /** where it sits in the request, for error messages */
  param: string;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  images: ImageRef[];
  stream: boolean;
  includeUsage: boolean;
  n: number;
  maxTokens: number;
  temperature?: number;
  topP?: number;
  seed?: number;
  stop: string[];
  /** logprobs: true: how many alternatives per token (top_logprobs, 0 when left out); undefined: no logprobs */
  topLogprobs?: number;
  /** response_format {"type": "json_object"}: the answer is one JSON object (constrained decoding) */
  json: boolean;
}

type Obj = Record<string, unknown>;

const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);

function typeName(x: unknown): string {
  return x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x;
}

function wrongType(param: string, want: string, got: unknown): never {
  throw badRequest(param, `${param} must be ${want}, got ${typeName(got)}`, 'invalid_type');
}

function optNumber(body: Obj, key: string, ok: (x: number) => boolean, want: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) wrongType(key, want, v);
  if (!ok(v)) throw badRequest(key, `${key} must be ${want}, got ${v}`);
  return v;
}

function optBool(body: Obj, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') wrongType(key, 'true or false', v);
  return v;
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant']);

function parseMessages(raw: unknown, limits: ServeLimits): { messages: ChatMessage[]; images: ImageRef[] } {
  if (!Array.isArray(raw)) wrongType('messages', 'an array of {role, content}', raw);
  if (raw.length === 0) throw badRequest('messages', 'messages is empty; send at least one {"role": "user", "content": "..."}');
  const images: ImageRef[] = [];
  const messages = raw.map((m, i): ChatMessage => {
    const at = `messages[${i}]`;
    if (!isObj(m)) wrongType(at, 'an object {role, content}', m);
    if (typeof m.role !== 'string') wrongType(`${at}.role`, 'a string', m.role);
    if (!ROLES.has(m.role)) throw badRequest(`${at}.role`, `${at}.role "${m.role}" is not supported; use system, developer, user or assistant`);
    const role = m.role === 'developer' ? 'system' : m.role; // OpenAI's newer name for the system turn
    const content = m.content;
    if (typeof content === 'string') return { role, content: [{ type: 'text', text: content }] };
    if (!Array.isArray(content)) wrongType(`${at}.content`, 'a string or an array of content parts', content);
    const parts = content.map((p, j): ContentPart => {
      const pat = `${at}.content[${j}]`;
      if (!isObj(p)) wrongType(pat, 'an object {type, ...}', p);
      if (p.type === 'text') {
        if (typeof p.text !== 'string') wrongType(`${pat}.text`, 'a string', p.text);
        return { type: 'text', text: p.text };
      }
      if (p.type === 'image_url') {
        if (role !== 'user') throw badRequest(`${pat}.type`, `${pat}: images go in user messages only, this one is ${role}`);
        const iu = p.image_url;
        // OpenAI's shape is {url, detail}; a bare string is accepted as vLLM does
        const url = typeof iu === 'string' ? iu : isObj(iu) ? iu.url : undefined;
        if (typeof url !== 'string') wrongType(`${pat}.image_url.url`, 'a string (a data: URL, an http(s) URL or a file:// URL)', url);
        if (images.length >= limits.maxImages) throw badRequest(`${pat}.image_url`, `too many images: this server takes at most ${limits.maxImages} per request (--max-images)`, 'too_many_images');
        images.push({ url, param: `${pat}.image_url.url` });
        return { type: 'image' };
      }
      throw badRequest(`${pat}.type`, `${pat}.type ${JSON.stringify(p.type)} is not supported; use "text" or "image_url"`);
    });
    return { role, content: parts };
  });
  if (messages[messages.length - 1]!.role === 'assistant') {
    throw badRequest(`messages[${messages.length - 1}].role`, 'the last message is the assistant\'s; end with a user message (continuing an assistant turn is not supported)');
  }
  return { messages, images };
}

function parseStop(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list)) wrongType('stop', 'a string or an array of strings', v);
  if (list.length > 4) throw badRequest('stop', `stop takes at most 4 strings, got ${list.length}`);
  list.forEach((s, i) => {
    if (typeof s !== 'string') wrongType(`stop[${i}]`, 'a string', s);
    if (s === '') throw badRequest(`stop[${i}]`, 'stop strings must not be empty');
  });
  return list as string[];
}

/** Fields that would change the answer's meaning when ignored: refused unless they ask for the default. */
function refuseUnsupported(body: Obj): void {
  const off = (key: string, isDefault: (v: unknown) => boolean, why: string) => {
    const v = body[key];
    if (v !== undefined && v !== null && !isDefault(v)) throw badRequest(key, `${key} is not supported by vlmkit serve yet (${why})`, 'unsupported_parameter');
  };
  off('frequency_penalty', (v) => v === 0, 'leave it out or set it to 0');
  off('presence_penalty', (v) => v === 0, 'leave it out or set it to 0');
  off('logit_bias', (v) => isObj(v) && Object.keys(v).length === 0, 'leave it out');
  off('tools', (v) => Array.isArray(v) && v.length === 0, 'no tool calling');
  off('tool_choice', (v) => v === 'none', 'no tool calling');
}

/** logprobs and top_logprobs as OpenAI checks them: the count of alternatives, or undefined without logprobs. */
function parseLogprobs(body: Obj): number | undefined {
  const on = optBool(body, 'logprobs') ?? false;
  const top = optNumber(body, 'top_logprobs', (x) => Number.isInteger(x) && x >= 0 && x <= 20, 'an integer from 0 to 20');
  if (top !== undefined && !on) throw badRequest('top_logprobs', 'top_logprobs needs "logprobs": true');
  return on ? top ?? 0 : undefined;
}

/** response_format: whether the answer must be a JSON object. */
function parseResponseFormat(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (!isObj(v)) wrongType('response_format', 'an object {"type": "text"} or {"type": "json_object"}', v);
  if (v.type === 'text') return false;
  if (v.type === 'json_object') return true;
  if (v.type === 'json_schema') throw badRequest('response_format.type', 'response_format json_schema is not supported by vlmkit serve; use {"type": "json_object"} (any JSON object) and describe the fields in the prompt', 'unsupported_parameter');
  throw badRequest('response_format.type', `response_format.type ${JSON.stringify(v.type)} is not supported; use "text" or "json_object"`);
}

/** The checked request; `body` is the parsed JSON. */
export function parseChatRequest(body: unknown, limits: ServeLimits): ChatRequest {
  if (!isObj(body)) wrongType('body', 'a JSON object', body);
  if (typeof body.model !== 'string') wrongType('model', 'a string (GET /v1/models lists the model)', body.model);
  const { messages, images } = parseMessages(body.messages, limits);
  refuseUnsupported(body);
  const stream = optBool(body, 'stream') ?? false;
  let includeUsage = false;
  const so = body.stream_options;
  if (so !== undefined && so !== null) {
    if (!isObj(so)) wrongType('stream_options', 'an object {include_usage}', so);
    if (!stream) throw badRequest('stream_options', 'stream_options is only allowed with "stream": true');
    const iu = so.include_usage;
    if (iu !== undefined && iu !== null && typeof iu !== 'boolean') wrongType('stream_options.include_usage', 'true or false', iu);
    includeUsage = iu === true;
  }
  const n = optNumber(body, 'n', (x) => Number.isInteger(x) && x >= 1 && x <= limits.maxN, `an integer from 1 to ${limits.maxN}`) ?? 1;
  const wantMax = (key: string) =>
    optNumber(body, key, (x) => Number.isInteger(x) && x >= 1, 'an integer >= 1');
  const mt = wantMax('max_completion_tokens') ?? wantMax('max_tokens');
  if (mt !== undefined && mt > limits.maxTokens) {
    const key = body.max_completion_tokens !== undefined && body.max_completion_tokens !== null ? 'max_completion_tokens' : 'max_tokens';
    throw badRequest(key, `${key} ${mt} is over this server's limit of ${limits.maxTokens} (--max-tokens)`);
  }
  return {
    model: body.model,
    messages,
    images,
    stream,
    includeUsage,
    n,
    maxTokens: mt ?? limits.maxTokens,
    temperature: optNumber(body, 'temperature', (x) => x >= 0 && x <= 2, 'a number from 0 to 2 (0 = greedy)'),
    topP: optNumber(body, 'top_p', (x) => x > 0 && x <= 1, 'a number in (0, 1]'),
    seed: optNumber(body, 'seed', (x) => Number.isSafeInteger(x), 'an integer'),
    stop: parseStop(body.stop),
    topLogprobs: parseLogprobs(body),
    json: parseResponseFormat(body.response_format),
  };
}
