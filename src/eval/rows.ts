// Evaluation rows from a JSONL file in the forms `vlmkit data` and `vlmkit train` use:
//   {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "..."}]},
//                 {"role": "assistant", "content": [{"type": "text", "text": "..."}]}],
//    "images": ["images/a.png"], "category": "count", "answer": "3", "box": {"x0":..,"y0":..,"x1":..,"y1":..}}
//   {"prompt": "..." | [messages], "completion": "..." | [messages], "images": [...], ...}
// The prompt is the conversation up to its last assistant message. The reference answers are "answers" (a list,
// VQA style), else "answer" (a string or a list), else the text of that last assistant message. Image paths are
// relative to the JSONL file. A row that cannot be evaluated is a VlmkitError naming the file and line.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { PixelBox } from '../data/loc.js';
import { VlmkitError } from '../errors.js';
import type { ChatMessage, ContentPart } from '../processing/chat-template.js';

export interface EvalRow {
  /** 1-based line in the file */
  line: number;
  /** the conversation to answer (ends with a user turn) */
  prompt: ChatMessage[];
  /** absolute image paths, in placeholder order */
  images: string[];
  references: string[];
  category: string;
  box?: PixelBox;
}

export interface BadRow {
  line: number;
  reason: string;
}

export interface ReadRowsOptions {
  /** stop after this many usable rows */
  maxRows?: number;
  /** skip rows that cannot be evaluated (returned in `skipped`) instead of failing on the first */
  skipBadRows?: boolean;
  /** the row field holding the category (default "category"); rows without it count as "(none)" */
  categoryField?: string;
}

/** Lines longer than this are refused (a file that is not JSONL would otherwise be read whole as one line). */
const MAX_LINE_CHARS = 16 << 20;

class RowProblem extends Error {}
const bad = (reason: string): never => {
  throw new RowProblem(reason);
};

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((p) => (p && typeof p === 'object' && (p as { type?: unknown }).type === 'text' ? String((p as { text?: unknown }).text ?? '') : '')).join('');
}

function messages(v: unknown, field: string, baseDir: string): ChatMessage[] {
  if (typeof v === 'string') return [{ role: field === 'completion' ? 'assistant' : 'user', content: v }];
  if (!Array.isArray(v)) return bad(`"${field}" must be a string or a list of {role, content} messages`);
  return v.map((m, i) => {
    const { role, content } = (m ?? {}) as { role?: unknown; content?: unknown };
    if (typeof role !== 'string') bad(`${field}[${i}].role must be a string such as "user" or "assistant"`);
    if (typeof content === 'string') return { role: role as string, content };
    if (!Array.isArray(content)) bad(`${field}[${i}].content must be a string or a list of {type: 'text'|'image'} parts`);
    const parts = (content as unknown[]).map((p, j): ContentPart => {
      const part = (p ?? {}) as { type?: unknown; text?: unknown };
      if (part.type === 'image') return { type: 'image' };
      if (part.type === 'text' && typeof part.text === 'string') return { type: 'text', text: part.text };
      if (part.type === 'video') {
        // a video names its file (relative to the JSONL's folder); the model samples its frames when asked
        const path = (p as { path?: unknown }).path;
        if (typeof path !== 'string') bad(`${field}[${i}].content[${j}] is a video part without a "path" string`);
        const abs = isAbsolute(path as string) ? (path as string) : resolve(baseDir, path as string);
        if (!existsSync(abs) || !statSync(abs).isFile()) bad(`video ${abs} does not exist; fix the path (relative paths are from the JSONL file's folder)`);
        return { type: 'video', path: abs };
      }
      return bad(`${field}[${i}].content[${j}] must be {"type": "image"}, {"type": "video", "path": "..."} or {"type": "text", "text": "..."}`);
    });
    return { role: role as string, content: parts };
  });
}

function placeholders(msgs: readonly ChatMessage[]): number {
  let n = 0;
  for (const m of msgs) {
    if (typeof m.content === 'string') n += m.content.split('<image>').length - 1;
    else for (const p of m.content) n += p.type === 'image' ? 1 : p.type === 'text' ? (p as { text: string }).text.split('<image>').length - 1 : 0;
  }
  return n;
}

function strings(v: unknown, field: string): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string')) return v as string[];
  return bad(`"${field}" must be a string or a non-empty list of strings`);
}

function checkBox(v: unknown): PixelBox {
  const b = (v ?? {}) as Record<string, unknown>;
  const ks = ['x0', 'y0', 'x1', 'y1'] as const;
  if (typeof v !== 'object' || v === null || ks.some((k) => typeof b[k] !== 'number' || !Number.isFinite(b[k])))
    bad('"box" must be {"x0", "y0", "x1", "y1"} in the image\'s pixels');
  const [x0, y0, x1, y1] = ks.map((k) => b[k] as number) as [number, number, number, number];
  return { x0: Math.min(x0, x1), y0: Math.min(y0, y1), x1: Math.max(x0, x1), y1: Math.max(y0, y1) };
}

function parseRow(obj: unknown, line: number, baseDir: string, categoryField: string): EvalRow {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) bad('a row must be a JSON object');
  const row = obj as Record<string, unknown>;
  let conv: ChatMessage[];
  if (row.messages !== undefined) conv = messages(row.messages, 'messages', baseDir);
  else if (row.prompt !== undefined) conv = [...messages(row.prompt, 'prompt', baseDir), ...(row.completion !== undefined ? messages(row.completion, 'completion', baseDir) : [])];
  else return bad('a row needs "messages" or "prompt" (and "completion")');
  const lastAssistant = conv.map((m) => m.role).lastIndexOf('assistant');
  let prompt = lastAssistant >= 0 ? conv.slice(0, lastAssistant) : conv;
  if (!prompt.some((m) => m.role === 'user')) bad('no user message before the answer: nothing to ask the model');
  let references: string[];
  if (row.answers !== undefined) references = strings(row.answers, 'answers');
  else if (row.answer !== undefined) references = strings(row.answer, 'answer');
  else if (lastAssistant >= 0) references = [textOf(conv[lastAssistant]!.content)];
  else return bad('no reference answer: give "answer", "answers" or an assistant message');
  const imgs = row.images ?? (row.image !== undefined ? [row.image] : []);
  if (!Array.isArray(imgs) || imgs.some((p) => typeof p !== 'string')) bad('"images" must be a list of image file paths');
  const images = (imgs as string[]).map((p) => (isAbsolute(p) ? p : resolve(baseDir, p)));
  const n = placeholders(prompt);
  if (n === 0 && images.length > 0) {
    // images without placeholders go first in the first user message, as TRL and `vlmkit train` put them
    const i = prompt.findIndex((m) => m.role === 'user');
    const m = prompt[i]!;
    const parts: ContentPart[] = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : [...m.content];
    prompt = prompt.slice();
    prompt[i] = { ...m, content: [...images.map(() => ({ type: 'image' }) as ContentPart), ...parts] };
  } else if (n !== images.length) {
    bad(`the prompt has ${n} image placeholder(s) but "images" lists ${images.length}; give one image per {"type": "image"} part`);
  }
  for (const p of images) if (!existsSync(p) || !statSync(p).isFile()) bad(`image ${p} does not exist; fix the path (relative paths are from the JSONL file's folder)`);
  const cat = row[categoryField];
  const category = typeof cat === 'string' && cat ? cat : typeof cat === 'number' ? String(cat) : '(none)';
  return { line, prompt, images, references, category, ...(row.box !== undefined && { box: checkBox(row.box) }) };
}

/** The rows of a JSONL file, read line by line (up to maxRows usable rows). */
export async function readEvalRows(file: string, o: ReadRowsOptions = {}): Promise<{ rows: EvalRow[]; skipped: BadRow[] }> {
  let ok = false;
  try {
    ok = statSync(file).isFile();
  } catch {
    ok = false;
  }
  if (!ok) throw new VlmkitError('E_DATA', `--data ${file} does not exist or is not a file; give a JSONL file of rows (vlmkit data shapes makes test.jsonl)`);
  const baseDir = dirname(resolve(file));
  const rows: EvalRow[] = [];
  const skipped: BadRow[] = [];
  const stream = createReadStream(file, { encoding: 'utf8' });
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of lines) {
      line++;
      if (o.maxRows !== undefined && rows.length >= o.maxRows) break;
      if (!text.trim()) continue;
      try {
        if (text.length > MAX_LINE_CHARS) bad(`the line is over ${MAX_LINE_CHARS} characters; is this a JSONL file?`);
        let obj: unknown;
        try {
          obj = JSON.parse(text);
        } catch (e) {
          bad(`not valid JSON (${(e as Error).message})`);
        }
        rows.push(parseRow(obj, line, baseDir, o.categoryField ?? 'category'));
      } catch (e) {
        if (!(e instanceof RowProblem)) throw e;
        if (!o.skipBadRows) throw new VlmkitError('E_DATA', `${file}:${line}: ${e.message} (or pass --skip-bad-rows to leave such rows out)`);
        skipped.push({ line, reason: e.message });
      }
    }
  } finally {
    lines.close();
    stream.destroy();
  }
  return { rows, skipped };
}
