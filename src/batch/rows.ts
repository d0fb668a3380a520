// The rows of a `vlmkit batch` input file, one JSON object a line:
//
//   {"id": "a1", "image": "pics/1.png", "prompt": "How many circles are there?"}
//   {"id": 7, "images": ["a.png", "b.png"], "messages": [{"role": "user", "content": [{"type": "image"}, ...]}],
//    "sampling": {"temperature": 0.7, "top_p": 0.9, "max_tokens": 32, "seed": 1, "stop": ["."]}}
//
// Image paths are relative to the input file. A row that cannot run is kept with its one-line problem (it becomes
// an error line in the results; the job goes on). Each row has a key the results file records it under: its id,
// or its line number when it has no usable id (none, or one an earlier row already has).
import { isAbsolute, resolve } from 'node:path';
import type { VlmGenerateOptions } from '../api.js';
import type { ChatMessage, ContentPart } from '../processing/chat-template.js';
import { checkMessages, RowProblem } from '../train/data.js';

export type RowId = string | number | null;

export interface BatchRow {
  /** 1-based line in the input file */
  line: number;
  id: RowId;
  /** the results file's name for this row (see rowKey) */
  key: string;
  /** set when the row cannot run */
  problem?: string;
  messages: ChatMessage[];
  /** absolute image paths, in placeholder order */
  images: string[];
  sampling: VlmGenerateOptions;
  /** the sampling settings as text: rows run together only when theirs are the same */
  samplingKey: string;
}

/** The key of a row (or of a results line): its id, else `line:N` (no id, or a repeated one). */
export function rowKey(id: RowId, line: number | undefined): string {
  return line !== undefined ? `line:${line}` : `id:${JSON.stringify(id)}`;
}

const problem = (reason: string): never => {
  throw new RowProblem(reason);
};

function countImageParts(messages: readonly ChatMessage[]): number {
  let n = 0;
  for (const m of messages) if (typeof m.content !== 'string') n += m.content.filter((p) => p.type === 'image').length;
  return n;
}

function parseSampling(v: unknown): VlmGenerateOptions {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) problem('"sampling" must be an object like {"temperature": 0, "max_tokens": 64}');
  const s = v as Record<string, unknown>;
  const known = new Set(['temperature', 'top_p', 'top_k', 'max_tokens', 'seed', 'stop']);
  for (const k of Object.keys(s)) if (!known.has(k)) problem(`sampling.${k} is not a setting; use temperature, top_p, top_k, max_tokens, seed or stop`);
  const o: VlmGenerateOptions = {};
  const num = (k: string, ok: (x: number) => boolean, want: string): number | undefined => {
    const x = s[k];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'number' || !Number.isFinite(x) || !ok(x)) problem(`sampling.${k} must be ${want}, got ${JSON.stringify(x)}`);
    return x as number;
  };
  const set = <K extends keyof VlmGenerateOptions>(k: K, x: VlmGenerateOptions[K] | undefined) => {
    if (x !== undefined) o[k] = x;
  };
  set('temperature', num('temperature', (x) => x >= 0 && x <= 2, 'a number from 0 to 2 (0 = greedy)'));
  set('topP', num('top_p', (x) => x > 0 && x <= 1, 'a number in (0, 1]'));
  set('topK', num('top_k', (x) => Number.isInteger(x) && x >= 0, 'an integer >= 0'));
  set('maxNewTokens', num('max_tokens', (x) => Number.isInteger(x) && x >= 1 && x <= 1_000_000, 'an integer >= 1'));
  set('seed', num('seed', (x) => Number.isSafeInteger(x), 'an integer'));
  const stop = s.stop;
  if (stop !== undefined && stop !== null) {
    const list = typeof stop === 'string' ? [stop] : stop;
    if (!Array.isArray(list) || list.some((t) => typeof t !== 'string' || t === '')) problem('sampling.stop must be a string or a list of non-empty strings');
    o.stopStrings = list as string[];
  }
  return o;
}

function parseBody(row: Record<string, unknown>, baseDir: string): Pick<BatchRow, 'messages' | 'images' | 'sampling'> {
  const imgs = row.images ?? (row.image !== undefined ? [row.image] : []);
  if (!Array.isArray(imgs) || imgs.some((p) => typeof p !== 'string' || p === '')) problem('"image" must be an image file path, "images" a list of them');
  const images = (imgs as string[]).map((p) => (isAbsolute(p) ? p : resolve(baseDir, p)));
  let messages: ChatMessage[];
  if (row.messages !== undefined) {
    if (row.prompt !== undefined) problem('give "prompt" or "messages", not both');
    messages = checkMessages(row.messages, 'messages');
    if (messages.at(-1)?.role === 'assistant') problem('the last message is the assistant\'s; end with a user message');
    const parts = countImageParts(messages);
    if (parts === 0 && images.length > 0) {
      // the images go at the start of the first user message, as the training data rows do
      const i = messages.findIndex((m) => m.role === 'user');
      if (i < 0) problem(`the row has ${images.length} image(s) but no user message to put them in`);
      const m = messages[i]!;
      const text: ContentPart[] = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : [...m.content];
      messages[i] = { ...m, content: [...images.map((): ContentPart => ({ type: 'image' })), ...text] };
    } else if (parts !== images.length) {
      problem(`the messages have ${parts} {"type": "image"} part(s) but the row gives ${images.length} image(s); give one image per part`);
    }
  } else if (typeof row.prompt === 'string') {
    if (!row.prompt.trim()) problem('"prompt" is empty');
    messages = [{ role: 'user', content: [...images.map((): ContentPart => ({ type: 'image' })), { type: 'text', text: row.prompt }] }];
  } else {
    return problem(row.prompt === undefined ? 'the row needs "prompt" (a question) or "messages"' : '"prompt" must be a string');
  }
  return { messages, images, sampling: parseSampling(row.sampling) };
}

/**
 * The rows of the input file's text, every non-empty line one row (bad ones carry their problem). `baseDir` is
 * where relative image paths start.
 */
export function parseRows(text: string, baseDir: string): BatchRow[] {
  const rows: BatchRow[] = [];
  const firstLine = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (!raw) continue;
    const line = i + 1;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (e) {
      rows.push(badRow(line, null, `not valid JSON (${(e as Error).message})`));
      continue;
    }
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
      rows.push(badRow(line, null, 'a row must be a JSON object {"id", "image", "prompt"}'));
      continue;
    }
    const row = obj as Record<string, unknown>;
    const id = row.id;
    if (typeof id !== 'string' && !(typeof id === 'number' && Number.isFinite(id))) {
      rows.push(badRow(line, null, id === undefined ? 'the row has no "id"; give each row a unique string or number id' : '"id" must be a string or a number'));
      continue;
    }
    const idKey = rowKey(id, undefined);
    const first = firstLine.get(idKey);
    if (first !== undefined) {
      rows.push(badRow(line, id, `the id ${JSON.stringify(id)} is also on line ${first}; ids must be unique`));
      continue;
    }
    firstLine.set(idKey, line);
    try {
      const body = parseBody(row, baseDir);
      rows.push({ line, id, key: idKey, ...body, samplingKey: JSON.stringify(body.sampling) });
    } catch (e) {
      if (!(e instanceof RowProblem)) throw e;
      rows.push({ ...badRow(line, id, e.message), key: idKey });
    }
  }
  return rows;
}

/** A row that cannot run; without a usable id it is keyed by its line. */
function badRow(line: number, id: RowId, reason: string): BatchRow {
  return { line, id, key: rowKey(id, line), problem: reason, messages: [], images: [], sampling: {}, samplingKey: '' };
}
