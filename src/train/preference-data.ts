// Preference datasets for DPO: JSONL rows {prompt, chosen, rejected, images} in TRL's forms, checked row by row
// and tokenized once.
//
//   conversational:  {"prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "..."}]}],
//                     "chosen": [{"role": "assistant", "content": "..."}], "rejected": [...], "images": ["a.png"]}
//                    ("prompt" may be left out: the messages chosen and rejected share at the start are the prompt,
//                    as TRL's extract_prompt does)
//   plain:           {"prompt": "<|im_start|>User:<image>...<end_of_utterance>\nAssistant:",
//                     "chosen": " ...<end_of_utterance>\n", "rejected": "...", "images": [...]}
//
// As in TRL, a conversational row goes through the chat template (the prompt with the generation prefix, each
// answer as the assistant turn after it) and a plain row is used as written: the prompt's `<image>` placeholders
// are expanded, the answer is tokenized without special tokens and appended (no EOS is added: the answer carries
// its own end, as the reference fixture idefics3_lora_dpo does). The log-probabilities DPO compares are those of
// the answer's tokens.
// A row whose chosen or rejected answer is empty, or whose two answers are the same tokens, cannot teach a
// preference: a VlmkitError naming the file and line, or, with skipBadRows, skipped and counted.
import { isAbsolute, resolve } from 'node:path';
import { VlmkitError } from '../errors.js';
import type { ChatMessage, ContentPart } from '../processing/chat-template.js';
import type { RgbImage } from '../processing/decode.js';
import { type ImageGrid, type Processor, imageGridForSize } from '../models/index.js';
import { type EncodedConversation, countTargets, encodeConversation, labelsFor } from './collate.js';
import { type BadRow, RowProblem, bad, checkMessages as checkRowMessages, readJsonlRows } from './data.js';

export type PreferenceRowKind = 'conversational' | 'plain';

/** One usable pair: both full sequences (prompt + answer) with the answer's token span, and where it came from. */
export interface PreferenceExample {
  file: string;
  /** 1-based line in the file */
  line: number;
  /** "pairs.jsonl:12" */
  where: string;
  kind: PreferenceRowKind;
  /** absolute image paths, in placeholder order */
  images: string[];
  grids: ImageGrid[];
  chosen: EncodedConversation;
  rejected: EncodedConversation;
  /** tokens of both sequences */
  length: number;
  /** real image tiles of one sequence */
  tiles: number;
  /** the reference model's summed answer log-probs, when computed up front (--precompute-ref) */
  ref?: { chosen: number; rejected: number };
}

export interface PreferenceDataOptions {
  /** a pair whose longer sequence is over this many tokens is a bad row */
  maxLength?: number;
  /** skip bad rows (counted in `skipped`) instead of stopping at the first */
  skipBadRows?: boolean;
  /** image decoding override (default: the processor's) */
  loadImage?: (path: string) => Promise<RgbImage>;
}

// one field of a row may also be a string (plain form), so its error says so
const checkMessages = (v: unknown, field: string) => checkRowMessages(v, field, 'a string or a list of {role, content} messages');

function messageText(m: ChatMessage): string {
  return typeof m.content === 'string' ? m.content : m.content.map((p) => (p.type === 'text' ? (p as { text: string }).text : '')).join('');
}

function placeholders(messages: readonly ChatMessage[]): number {
  let n = 0;
  for (const m of messages) {
    if (typeof m.content === 'string') n += m.content.split('<image>').length - 1;
    else for (const p of m.content) n += p.type === 'image' ? 1 : p.type === 'text' ? (p as { text: string }).text.split('<image>').length - 1 : 0;
  }
  return n;
}

function sameMessage(a: ChatMessage, b: ChatMessage): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Puts n image parts at the start of the first user message (TRL's prepare_multimodal_messages). */
function insertImages(messages: ChatMessage[], n: number): ChatMessage[] {
  const i = messages.findIndex((m) => m.role === 'user');
  if (i < 0) bad(`the row has ${n} image(s) but its prompt has no user message to put them in`);
  const m = messages[i]!;
  const parts: ContentPart[] = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : [...m.content];
  const out = messages.slice();
  out[i] = { ...m, content: [...Array.from({ length: n }, () => ({ type: 'image' }) as ContentPart), ...parts] };
  return out;
}

type ParsedRow =
  | { kind: 'plain'; prompt: string; chosen: string; rejected: string; imagePaths: string[] }
  | { kind: 'conversational'; prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[]; imagePaths: string[] };

function parseRow(obj: unknown, baseDir: string): ParsedRow {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) bad('a row must be a JSON object');
  const row = obj as Record<string, unknown>;
  for (const k of ['chosen', 'rejected'] as const) if (row[k] === undefined) bad(`a preference row needs "chosen" and "rejected"; "${k}" is missing`);
  const imgs = row.images ?? (row.image !== undefined ? [row.image] : []);
  if (!Array.isArray(imgs) || imgs.some((p) => typeof p !== 'string')) bad('"images" must be a list of image file paths');
  const imagePaths = (imgs as string[]).map((p) => (isAbsolute(p) ? p : resolve(baseDir, p)));
  if (typeof row.chosen === 'string' || typeof row.rejected === 'string') {
    if (typeof row.chosen !== 'string' || typeof row.rejected !== 'string') bad('"chosen" and "rejected" must both be strings (plain form) or both lists of messages (conversational form)');
    if (typeof row.prompt !== 'string') bad('a plain preference row needs "prompt" as a string, like "chosen" and "rejected"');
    const [prompt, chosen, rejected] = [row.prompt as string, row.chosen as string, row.rejected as string];
    for (const [k, s] of [['chosen', chosen], ['rejected', rejected]] as const) {
      if (!s.trim()) bad(`"${k}" is empty: a preference pair needs two different non-empty answers`);
      if (s.includes('<image>')) bad(`"${k}" holds an <image> placeholder; images belong in the prompt`);
    }
    const n = prompt.split('<image>').length - 1;
    if (n !== imagePaths.length) bad(`the prompt has ${n} <image> placeholder(s) but "images" lists ${imagePaths.length}; put one <image> in the prompt per image`);
    return { kind: 'plain', prompt, chosen, rejected, imagePaths };
  }
  let chosen = checkMessages(row.chosen, 'chosen');
  let rejected = checkMessages(row.rejected, 'rejected');
  let prompt: ChatMessage[];
  if (row.prompt === undefined) {
    // the implicit prompt: the messages both answers start with
    let k = 0;
    while (k < chosen.length - 1 && k < rejected.length - 1 && sameMessage(chosen[k]!, rejected[k]!)) k++;
    prompt = chosen.slice(0, k);
    chosen = chosen.slice(k);
    rejected = rejected.slice(k);
  } else {
    if (typeof row.prompt === 'string') bad('"prompt" is a string but "chosen" and "rejected" are messages; give the prompt as a list of messages too');
    prompt = checkMessages(row.prompt, 'prompt');
  }
  if (!prompt.length) bad('the prompt is empty: give "prompt" messages (or chosen/rejected conversations that start with the same messages)');
  for (const [k, ms] of [['chosen', chosen], ['rejected', rejected]] as const) {
    if (!ms.some((m) => m.role === 'assistant')) bad(`"${k}" has no assistant message: nothing to compare`);
    if (ms.filter((m) => m.role === 'assistant').every((m) => !messageText(m).trim())) bad(`"${k}" is empty: a preference pair needs two different non-empty answers`);
    if (placeholders(ms) > 0) bad(`"${k}" holds an image; images belong in the prompt`);
  }
  const n = placeholders(prompt);
  if (n === 0 && imagePaths.length > 0) prompt = insertImages(prompt, imagePaths.length);
  else if (n !== imagePaths.length) bad(`the prompt has ${n} image placeholder(s) but "images" lists ${imagePaths.length}; give one image per {"type": "image"} part`);
  return { kind: 'conversational', prompt, chosen, rejected, imagePaths };
}

/** The answer's tokens (the targets DPO scores) of one encoded sequence. */
export function answerTokens(c: EncodedConversation): number[] {
  const out: number[] = [];
  for (const [s, e] of c.assistantSpans) out.push(...c.inputIds.slice(s, e));
  return out;
}

/** Prompt + answer as tokens, with the answer's span. */
function encodeSide(processor: Processor, row: ParsedRow, side: 'chosen' | 'rejected', grids: readonly ImageGrid[]): EncodedConversation {
  if (row.kind === 'plain') {
    const p = processor.prompt.buildText(row.prompt, { images: grids }).inputIds;
    const a = processor.tokenizer.encode(row[side], { addSpecialTokens: false });
    return { inputIds: [...p, ...a], assistantSpans: a.length ? [[p.length, p.length + a.length]] : [] };
  }
  return encodeConversation(processor.prompt, [...row.prompt, ...row[side]], grids, row.prompt.length);
}

export interface PreferenceDatasetSummary {
  file: string;
  rows: number;
  used: number;
  skipped: number;
  tokens: number;
  tiles: number;
}

/** The usable pairs of one JSONL file (load() checks and tokenizes them all up front). */
export class PreferenceDataset {
  private constructor(readonly file: string, readonly examples: PreferenceExample[], readonly skipped: BadRow[], readonly rows: number) {}

  get length(): number {
    return this.examples.length;
  }

  summary(): PreferenceDatasetSummary {
    return {
      file: this.file, rows: this.rows, used: this.examples.length, skipped: this.skipped.length,
      tokens: this.examples.reduce((a, e) => a + e.length, 0), tiles: this.examples.reduce((a, e) => a + e.tiles, 0),
    };
  }

  /** One row (already parsed JSON) -> a pair, or a RowProblem. Exposed for the parity tool's DPO case. */
  static async encodeRow(obj: unknown, baseDir: string, processor: Processor, where: { file: string; line: number }, o: PreferenceDataOptions = {}): Promise<PreferenceExample> {
    const imageTokenId = processor.tokenizer.specialIds.image;
    if (imageTokenId === null) throw new VlmkitError('E_TOKENIZER', `the tokenizer of ${processor.dir} has no <image> token`);
    const row = parseRow(obj, baseDir);
    const load = o.loadImage ?? (async (p: string) => (await processor.loadImages([p]))[0]!);
    const imageConfig = processor.imageConfigFor();
    const grids: ImageGrid[] = [];
    for (const p of row.imagePaths) {
      let im: RgbImage;
      try {
        im = await load(p);
      } catch (e) {
        return bad(e instanceof VlmkitError ? e.message : `image ${p} cannot be read (${(e as Error).message})`);
      }
      grids.push(imageGridForSize(im.width, im.height, imageConfig));
    }
    const chosen = encodeSide(processor, row, 'chosen', grids);
    const rejected = encodeSide(processor, row, 'rejected', grids);
    for (const [k, c] of [['chosen', chosen], ['rejected', rejected]] as const)
      if (countTargets(labelsFor(c.inputIds, c.assistantSpans, { imageTokenId, assistantOnly: true })) === 0) bad(`"${k}" is empty: its answer renders to no tokens`);
    const a = answerTokens(chosen), b = answerTokens(rejected);
    if (a.length === b.length && a.every((t, i) => t === b[i])) bad('"chosen" and "rejected" are the same answer: a pair must prefer one answer over a different one');
    const longest = Math.max(chosen.inputIds.length, rejected.inputIds.length);
    if (o.maxLength !== undefined && longest > o.maxLength) bad(`too long: ${longest} tokens exceed max length ${o.maxLength}; raise --max-length or shorten the row`);
    const tiles = grids.reduce((s, g) => s + (g.rows ? g.rows * g.cols + 1 : 1), 0);
    return {
      file: where.file, line: where.line, where: `${where.file}:${where.line}`, kind: row.kind, images: row.imagePaths, grids,
      chosen, rejected, length: chosen.inputIds.length + rejected.inputIds.length, tiles,
    };
  }

  static async load(file: string, processor: Processor, o: PreferenceDataOptions = {}): Promise<PreferenceDataset> {
    const { examples, skipped, rows } = await readJsonlRows(file, 'preference rows', o.skipBadRows,
      (obj, line, baseDir) => PreferenceDataset.encodeRow(obj, baseDir, processor, { file, line }, o));
    return new PreferenceDataset(file, examples, skipped, rows);
  }
}

/** A RowProblem from encodeRow as the one-line error a caller outside a dataset file reports. */
export function isRowProblem(e: unknown): e is Error {
  return e instanceof RowProblem;
}
