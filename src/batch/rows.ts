// The rows of a `vlmkit batch` input file, one JSON object a line:
//
//   {"id": "a1", "image": "pics/1.png", "prompt": "How many circles are there?"}
//   {"id": 7, "images": ["a.png", "b.png"], "messages": [{"role": "user", "content": [{"type": "image"}, ...]}],
//    "sampling": {"temperature": 0.7, "top_p": 0.9, "max_tokens": 32, "seed": 1, "stop": ["."]}}
//   {"id": "v1", "video": "clips/1.mp4", "fps": 1, "max_frames": 8, "prompt": "What happens?"}
//
// Image and video paths are relative to the input file. A row that cannot run is kept with its one-line problem
// (it becomes an error line in the results; the job goes on). Each row has a key the results file records it
// under: its id, or its line number when it has no usable id (none, or one an earlier row already has).
import { isAbsolute, resolve } from 'node:path';
import type { VlmGenerateOptions } from '../api.js';
import { userMessage } from '../models/index.js';
import { type ChatMessage, type ContentPart, countMedia } from '../processing/chat-template.js';
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
  /** absolute video paths (at most one), in placeholder order */
  videos: string[];
  /** the row's own settings: its "sampling", and its "fps" / "max_frames" for a video */
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

/** A row's "fps" and "max_frames": the video's sampling, as `ask --fps --max-frames` takes it. */
function parseVideoSampling(row: Record<string, unknown>, hasVideo: boolean): VlmGenerateOptions {
  const o: VlmGenerateOptions = {};
  for (const k of ['fps', 'max_frames'] as const) {
    const x = row[k];
    if (x === undefined || x === null) continue;
    if (!hasVideo) problem(`"${k}" applies to a "video"; give one or drop "${k}"`);
    if (k === 'fps') {
      if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) problem(`"fps" must be a number of frames per second > 0, e.g. 1, got ${JSON.stringify(x)}`);
      o.fps = x as number;
    } else {
      if (typeof x !== 'number' || !Number.isInteger(x) || x < 1) problem(`"max_frames" must be a whole number >= 1, e.g. 16, got ${JSON.stringify(x)}`);
      o.maxFrames = x as number;
    }
  }
  return o;
}

const absolute = (baseDir: string) => (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));

function parseBody(row: Record<string, unknown>, baseDir: string): Pick<BatchRow, 'messages' | 'images' | 'videos' | 'sampling'> {
  const imgs = row.images ?? (row.image !== undefined ? [row.image] : []);
  if (!Array.isArray(imgs) || imgs.some((p) => typeof p !== 'string' || p === '')) problem('"image" must be an image file path, "images" a list of them');
  if (row.videos !== undefined) problem('a row takes one video: write "video": "clip.mp4"');
  if (row.video !== undefined && (typeof row.video !== 'string' || row.video === '')) problem('"video" must be a video file path');
  const images = (imgs as string[]).map(absolute(baseDir));
  const videos = row.video !== undefined ? [absolute(baseDir)(row.video as string)] : [];
  let messages: ChatMessage[];
  if (row.messages !== undefined) {
    if (row.prompt !== undefined) problem('give "prompt" or "messages", not both');
    messages = checkMessages(row.messages, 'messages');
    if (messages.at(-1)?.role === 'assistant') problem('the last message is the assistant\'s; end with a user message');
    const parts = countMedia(messages);
    const missing = { images: parts.images === 0 ? images.length : 0, videos: parts.videos === 0 ? videos.length : 0 };
    if (missing.images || missing.videos) {
      // the media go at the start of the first user message, videos first, as `ask` and the training rows do
      const i = messages.findIndex((m) => m.role === 'user');
      if (i < 0) problem('the row has images or a video but no user message to put them in');
      const m = messages[i]!;
      const text: ContentPart[] = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : [...m.content];
      const media: ContentPart[] = [...Array(missing.videos).fill({ type: 'video' }), ...Array(missing.images).fill({ type: 'image' })];
      messages[i] = { ...m, content: [...media, ...text] };
    }
    const now = countMedia(messages);
    if (now.images !== images.length) problem(`the messages have ${now.images} {"type": "image"} part(s) but the row gives ${images.length} image(s); give one image per part`);
    if (now.videos !== videos.length) problem(`the messages have ${now.videos} {"type": "video"} part(s) but the row gives ${videos.length} video(s); give one video per part`);
  } else if (typeof row.prompt === 'string') {
    if (!row.prompt.trim()) problem('"prompt" is empty');
    // as `vlmkit ask` builds its question: videos, images, then the text
    messages = [userMessage(row.prompt, images.length, videos.length)];
  } else {
    return problem(row.prompt === undefined ? 'the row needs "prompt" (a question) or "messages"' : '"prompt" must be a string');
  }
  return { messages, images, videos, sampling: { ...parseSampling(row.sampling), ...parseVideoSampling(row, videos.length > 0) } };
}

/** One input row before it is checked: its JSON value, or why its line is not JSON. */
export interface RawRow {
  line: number;
  value?: unknown;
  invalid?: string;
}

/**
 * The rows of the input file's text, every non-empty line one row (bad ones carry their problem). `baseDir` is
 * where relative image paths start.
 */
export function parseRows(text: string, baseDir: string): BatchRow[] {
  const raw: RawRow[] = [];
  text.split('\n').forEach((l, i) => {
    const t = l.trim();
    if (!t) return;
    try {
      raw.push({ line: i + 1, value: JSON.parse(t) });
    } catch (e) {
      raw.push({ line: i + 1, invalid: `not valid JSON (${(e as Error).message})` });
    }
  });
  return checkRows(raw, baseDir);
}

/** Rows from their JSON values, as parseRows checks them (ids unique, every field valid). */
export function checkRows(raw: readonly RawRow[], baseDir: string): BatchRow[] {
  const rows: BatchRow[] = [];
  const firstLine = new Map<string, number>();
  for (const { line, value: obj, invalid } of raw) {
    if (invalid !== undefined) {
      rows.push(badRow(line, null, invalid));
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
  return { line, id, key: rowKey(id, line), problem: reason, messages: [], images: [], videos: [], sampling: {}, samplingKey: '' };
}
