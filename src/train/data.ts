// SFT datasets: JSONL in TRL's two forms, checked row by row, tokenized once; and the seeded batch order.
//
//   conversational:     {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "..."}]},
//                                     {"role": "assistant", "content": "..."}], "images": ["a.png"]}
//   prompt/completion:  {"prompt": "..." | [messages], "completion": "..." | [messages], "images": [...]}
//
//   with a video:       {"messages": [{"role": "user", "content": [{"type": "video", "path": "clip.mp4"}, {"type": "text", ...}]}, ...]}
//                       (or a "videos" list for video parts without a path)
//
// A video's frames are sampled and expanded exactly as inference does it (Processor.withFrames: SmolVLM2's video
// prompt, or on v1 checkpoints the frames as images after the course's intro line); a cut never splits a frame's
// block. Image and video paths are relative to the JSONL file (absolute paths work too). A string content is one text part; a row
// with images but no image placeholder gets them at the start of its first user message (as TRL's
// prepare_multimodal_messages does). A prompt/completion string becomes a user / an assistant message.
// Rows that cannot train (bad JSON, missing or unreadable image, no assistant turn, too long to cut safely) are a
// VlmkitError naming the file and line, or, with skipBadRows, skipped and counted.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { VlmkitError } from '../errors.js';
import type { ChatMessage, ContentPart } from '../processing/chat-template.js';
import { type RgbImage, predictImageSize, readImageFile } from '../processing/decode.js';
import { tooManyPixels } from '../processing/size.js';
import { type FramedSample, type ImageGrid, type ImageProcessorConfig, type Processor, type VideoOptions, imageGridForSize } from '../models/index.js';
import { type CollateItem, countTargets, encodeConversation, labelsFor, truncateConversation } from './collate.js';
import { packedArray } from './packed.js';

export type SftRowKind = 'messages' | 'prompt-completion';

/** One usable row: its conversation, image paths, tokens and where it came from. */
export interface SftExample extends CollateItem {
  file: string;
  /** 1-based line in the file */
  line: number;
  kind: SftRowKind;
  messages: ChatMessage[];
  /** absolute image paths, in placeholder order */
  images: string[];
  /** absolute video paths, in placeholder order (their frames are sampled again for each batch, as images are read) */
  videos: string[];
  /** the row's conversation as written (with its video parts; `messages` is what was tokenized) */
  rowMessages: ChatMessage[];
  /** the rendered prompt (placeholders unexpanded): the order of the pixel blocks */
  rendered: string;
  grids: ImageGrid[];
  /** tokens (after any truncation) */
  length: number;
  /** real image tiles */
  tiles: number;
  /** pictures and video frames planned when the row was tokenized (videos from ffprobe alone; checked at decode) */
  pixelBlocks?: number;
  truncated: boolean;
}

export interface BadRow {
  file: string;
  line: number;
  reason: string;
}

export interface SftDataOptions {
  /** longer rows are cut (when the cut keeps every image whole and leaves something to train on) or are bad */
  maxLength?: number;
  /** false: a row over maxLength is bad instead of cut (default true) */
  truncate?: boolean;
  /** skip bad rows (counted in `skipped`) instead of stopping at the first */
  skipBadRows?: boolean;
  /** loss on assistant replies only (decides what "something to train on" means after a cut) */
  assistantOnly?: boolean;
  /**
   * prompt/completion rows: train on the completion only (TRL's completion_only_loss, default true); the span
   * recorded for them is the completion. Conversational rows record every assistant reply.
   */
  completionOnly?: boolean;
  /** image decoding override (default: the processor's) */
  loadImage?: (path: string) => Promise<RgbImage>;
  /** frame sampling of the rows' videos (fps, maxFrames; default the checkpoint's) */
  video?: VideoOptions;
  /** reading progress: rows read so far of the file's rows (tokenizing tens of thousands of rows takes minutes) */
  onRow?: (done: number, total: number) => void;
  /** asked between rows: true stops the reading with E_INTERRUPTED (Ctrl-C while a large file loads) */
  shouldStop?: () => boolean;
}

function rowError(file: string, line: number, reason: string): VlmkitError {
  return new VlmkitError('E_DATA', `${file}:${line}: ${reason}`);
}

/** What is wrong with one data row; the loaders add the file and line. */
export class RowProblem extends Error {}
export const bad = (reason: string): never => {
  throw new RowProblem(reason);
};

const ROLES = new Set(['system', 'user', 'assistant', 'tool']);

/** A row field that must be TRL-style messages, checked; `expected` says what the field may be when it is not a list. */
export function checkMessages(v: unknown, field: string, expected = 'a list of {role, content} messages', allowVideo = false): ChatMessage[] {
  if (!Array.isArray(v)) bad(`"${field}" must be ${expected}`);
  return (v as unknown[]).map((m, i) => {
    if (!m || typeof m !== 'object') bad(`${field}[${i}] is not an object`);
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== 'string' || !ROLES.has(role)) bad(`${field}[${i}].role must be one of system, user, assistant, tool; got ${JSON.stringify(role)}`);
    if (typeof content === 'string') return { role: role as string, content };
    if (!Array.isArray(content)) bad(`${field}[${i}].content must be a string or a list of {type: 'text'|'image'} parts`);
    const parts = (content as unknown[]).map((p, j): ContentPart => {
      const part = p as { type?: unknown; text?: unknown };
      if (!p || typeof p !== 'object') bad(`${field}[${i}].content[${j}] is not an object`);
      if (part.type === 'image') return { type: 'image' };
      if (part.type === 'video' && allowVideo) {
        const path = (p as { path?: unknown; video?: unknown }).path ?? (p as { video?: unknown }).video;
        if (path !== undefined && typeof path !== 'string') bad(`${field}[${i}].content[${j}] is a video part whose "path" is not a string`);
        return path === undefined ? { type: 'video' } : { type: 'video', path };
      }
      if (part.type === 'text') {
        if (typeof part.text !== 'string') bad(`${field}[${i}].content[${j}] is a text part without a "text" string`);
        return { type: 'text', text: part.text as string };
      }
      return bad(`${field}[${i}].content[${j}].type must be 'text'${allowVideo ? ", 'image' or 'video'" : " or 'image'"}; got ${JSON.stringify(part.type)}`);
    });
    return { role: role as string, content: parts };
  });
}

function placeholderCount(messages: readonly ChatMessage[]): number {
  let n = 0;
  for (const m of messages) {
    if (typeof m.content === 'string') n += m.content.split('<image>').length - 1;
    else for (const p of m.content) n += p.type === 'image' ? 1 : p.type === 'text' ? (p as { text: string }).text.split('<image>').length - 1 : 0;
  }
  return n;
}

/** Puts n image parts at the start of the first user message (TRL's prepare_multimodal_messages). */
function insertImages(messages: ChatMessage[], n: number): ChatMessage[] {
  const i = messages.findIndex((m) => m.role === 'user');
  if (i < 0) bad(`the row has ${n} image(s) but no user message to put them in`);
  const m = messages[i]!;
  const parts: ContentPart[] = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : [...m.content];
  const out = messages.slice();
  out[i] = { ...m, content: [...Array.from({ length: n }, () => ({ type: 'image' }) as ContentPart), ...parts] };
  return out;
}

interface ParsedRow {
  kind: SftRowKind;
  messages: ChatMessage[];
  /** index of the first message whose assistant replies are trained (prompt/completion: the completion) */
  firstTrained: number;
  imagePaths: string[];
  videoPaths: string[];
}

/** The video of each video part: its own "path", else the next of the row's "videos" list. */
function rowVideos(messages: readonly ChatMessage[], listed: unknown, baseDir: string): string[] {
  if (listed !== undefined && (!Array.isArray(listed) || listed.some((p) => typeof p !== 'string'))) bad('"videos" must be a list of video file paths');
  const list = (listed ?? []) as string[];
  const out: string[] = [];
  let k = 0;
  for (const m of messages) {
    if (!Array.isArray(m.content)) continue;
    for (const p of m.content) {
      if (p.type !== 'video') continue;
      const own = (p as { path?: string }).path;
      const path = own ?? list[k++];
      if (path === undefined) bad(`video part ${out.length} has no "path" and "videos" lists no video for it; write {"type": "video", "path": "clip.mp4"}`);
      out.push(isAbsolute(path!) ? path! : resolve(baseDir, path!));
    }
  }
  if (k < list.length) bad(`"videos" lists ${list.length} video(s) but only ${k} video part(s) without a path take one; give one video per {"type": "video"} part`);
  return out;
}

function parseRow(obj: unknown, baseDir: string): ParsedRow {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) bad('a row must be a JSON object');
  const row = obj as Record<string, unknown>;
  let kind: SftRowKind;
  let messages: ChatMessage[];
  let firstTrained = 0;
  if (row.messages !== undefined) {
    kind = 'messages';
    messages = checkMessages(row.messages, 'messages', undefined, true);
  } else if (row.prompt !== undefined || row.completion !== undefined) {
    kind = 'prompt-completion';
    if (row.prompt === undefined) bad('a prompt/completion row needs "prompt"');
    if (row.completion === undefined) bad('a prompt/completion row needs "completion"');
    const prompt = typeof row.prompt === 'string' ? [{ role: 'user', content: row.prompt }] : checkMessages(row.prompt, 'prompt');
    const completion = typeof row.completion === 'string' ? [{ role: 'assistant', content: row.completion }] : checkMessages(row.completion, 'completion');
    messages = [...prompt, ...completion];
    firstTrained = prompt.length;
  } else {
    return bad('a row needs "messages" (conversational form) or "prompt" and "completion"');
  }
  if (!messages.slice(firstTrained).some((m) => m.role === 'assistant'))
    bad(kind === 'messages' ? 'no assistant turn: the conversation has nothing to learn' : 'no assistant turn: the completion has no assistant message');
  const imgs = row.images ?? (row.image !== undefined ? [row.image] : []);
  if (!Array.isArray(imgs) || imgs.some((p) => typeof p !== 'string')) bad('"images" must be a list of image file paths');
  const imagePaths = (imgs as string[]).map((p) => (isAbsolute(p) ? p : resolve(baseDir, p)));
  const placeholders = placeholderCount(messages);
  if (placeholders === 0 && imagePaths.length > 0) messages = insertImages(messages, imagePaths.length);
  else if (placeholders !== imagePaths.length)
    bad(`the messages have ${placeholders} image placeholder(s) but "images" lists ${imagePaths.length}; give one image per {"type": "image"} part`);
  const videoPaths = rowVideos(messages, row.videos, baseDir);
  return { kind, messages, firstTrained, imagePaths, videoPaths };
}

export interface SftDatasetSummary {
  file: string;
  rows: number;
  used: number;
  skipped: number;
  truncated: number;
  tokens: number;
  tiles: number;
}

/** The usable rows of one JSONL file (load() checks and tokenizes them all up front). */
export class SftDataset {
  readonly file: string;
  /** kept packed (src/train/packed.ts): each read parses the row again, so do not change what you read */
  readonly examples: readonly SftExample[];
  readonly skipped: BadRow[];
  readonly rows: number;
  /** counted once from the rows as loaded (the packed rows would be parsed again for each count) */
  private readonly counts: Pick<SftDatasetSummary, 'truncated' | 'tokens' | 'tiles'>;

  private constructor(file: string, examples: SftExample[], skipped: BadRow[], rows: number) {
    this.file = file;
    this.counts = {
      truncated: examples.filter((e) => e.truncated).length,
      tokens: examples.reduce((a, e) => a + e.length, 0),
      tiles: examples.reduce((a, e) => a + e.tiles, 0),
    };
    this.examples = packedArray(examples);
    this.skipped = skipped;
    this.rows = rows;
  }

  get length(): number {
    return this.examples.length;
  }

  summary(): SftDatasetSummary {
    return {
      file: this.file,
      rows: this.rows,
      used: this.examples.length,
      skipped: this.skipped.length,
      ...this.counts,
    };
  }

  static async load(file: string, processor: Processor, o: SftDataOptions = {}): Promise<SftDataset> {
    const tok = processor.tokenizer;
    const imageTokenId = tok.specialIds.image;
    if (imageTokenId === null) throw new VlmkitError('E_TOKENIZER', `the tokenizer of ${processor.dir} has no <image> token`);
    const imageConfig = processor.imageConfigFor();
    const load = o.loadImage ?? (async (p: string) => (await processor.loadImages([p]))[0]!);
    // Only an image's size decides its tokens, so a file whose header tells the size the decoder will give (EXIF
    // orientation included) is not decoded here: 57,600 PNGs took minutes to decode at load, the headers a few
    // seconds. Pixels are decoded per batch, where an unreadable body stops the run naming its file:line. Anything
    // the header cannot vouch for (an unknown format, a size over the pixel limit) is decoded now, as before.
    const sizeOf = async (p: string): Promise<[number, number]> => {
      if (!o.loadImage) {
        const s = predictImageSize(await readImageFile(p));
        if (s && !tooManyPixels(s[0], s[1], processor.options.maxImagePixels)) return s;
      }
      const im = await load(p);
      return [im.width, im.height];
    };
    const { examples, skipped, rows } = await readJsonlRows(file, 'rows', o, async (obj, line, baseDir): Promise<SftExample> => {
      const row = parseRow(obj, baseDir);
      // videos to frames as inference does it (v1: the messages gain the intro and image parts)
      let framed: FramedSample = { messages: row.messages, images: row.imagePaths };
      if (row.videoPaths.length) {
        try {
          // ffprobe only: decoding every clip here just to count its frames took 16 min for 3,000 clips (the
          // collator decodes them for each batch anyway and checks it got as many frames as planned here)
          framed = (await processor.withFrames([{ messages: row.messages, images: row.imagePaths, videos: row.videoPaths }], { ...o.video, sizesOnly: true }))[0]!;
        } catch (e) {
          if (!(e instanceof VlmkitError)) throw e;
          bad(e.message);
        }
      }
      const messages = framed.messages!;
      const grids: ImageGrid[] = [];
      for (const p of framed.images ?? []) {
        let size: [number, number];
        if (typeof p !== 'string') size = [(p as RgbImage).width, (p as RgbImage).height];
        else try {
          size = await sizeOf(p);
        } catch (e) {
          bad(e instanceof VlmkitError ? e.message : `image ${p} cannot be read (${(e as Error).message})`);
        }
        grids.push(imageGridForSize(size![0], size![1], imageConfig));
      }
      const videoPrompts = framed.videoPrompts ?? [];
      let enc = encodeConversation(processor.prompt, messages, grids, row.firstTrained, videoPrompts);
      const rendered = processor.prompt.build(messages, { images: grids, videos: videoPrompts }, { addGenerationPrompt: false }).prompt;
      const assistantOnly = o.assistantOnly || (row.kind === 'prompt-completion' && o.completionOnly !== false);
      if (!enc.assistantSpans.length) bad('no assistant turn: the assistant replies render to no tokens');
      let truncated = false;
      if (o.maxLength !== undefined) {
        const t = truncateConversation(enc, o.maxLength, {
          imageTokenId, fakeTokenId: tok.specialIds.fakeTokenAroundImage, assistantOnly, truncate: o.truncate,
        });
        if (!t.ok) bad(`too long: ${t.reason}`);
        else {
          enc = t.conversation;
          truncated = t.truncated;
        }
      }
      if (countTargets(labelsFor(enc.inputIds, enc.assistantSpans, { imageTokenId, assistantOnly })) === 0) bad('nothing to train on: every label is masked');
      const tiles = grids.reduce((a, g) => a + (g.rows ? g.rows * g.cols + 1 : 1), 0) + videoPrompts.reduce((a, v) => a + v.timestamps.length, 0);
      return {
        ...enc, grids, file, line, kind: row.kind, messages: [...messages], images: row.imagePaths, videos: row.videoPaths, rowMessages: row.messages, rendered,
        length: enc.inputIds.length, tiles, truncated, where: `${file}:${line}`, pixelBlocks: pixelBlocks(framed),
        completionOnly: row.kind === 'prompt-completion' && o.completionOnly !== false,
      };
    });
    return new SftDataset(file, examples, skipped, rows);
  }
}

/**
 * The rows of a JSONL data file through `encode`, one per non-empty line. A line that is not JSON, or whose encode
 * throws a RowProblem, is a one-line error naming file:line, or with skipBadRows a counted skip; a file with no
 * usable row is an error ("no usable <what>"). Shared by the SFT and preference loaders.
 */
export async function readJsonlRows<T>(file: string, what: string, o: Pick<SftDataOptions, 'skipBadRows' | 'onRow' | 'shouldStop'> | boolean | undefined,
  encode: (obj: unknown, line: number, baseDir: string) => Promise<T>): Promise<{ examples: T[]; skipped: BadRow[]; rows: number }> {
  const opts = typeof o === 'object' ? o : { skipBadRows: o };
  const skipBadRows = opts.skipBadRows;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new VlmkitError('E_FILE', `cannot read dataset ${file}: ${(e as NodeJS.ErrnoException).code ?? e}; check the path`);
  }
  const baseDir = dirname(resolve(file));
  const examples: T[] = [];
  const skipped: BadRow[] = [];
  const lines = text.split('\n');
  const total = opts.onRow ? lines.reduce((n, l) => n + (l.trim() ? 1 : 0), 0) : 0;
  let rows = 0;
  // Rows are encoded a few at a time, kept in file order: a row with a video waits on an ffprobe process, and with
  // WINDOW rows in flight those overlap (3,000 clips loaded one after the other took minutes). The window bounds
  // what is in flight, so memory does not grow with the file.
  const WINDOW = 4;
  const pending: { line: number; result: Promise<T> }[] = [];
  const settle = async ({ line, result }: { line: number; result: Promise<T> }): Promise<void> => {
    try {
      examples.push(await result);
    } catch (e) {
      if (!(e instanceof RowProblem)) throw e;
      if (!skipBadRows) throw rowError(file, line, `${e.message} (pass --skip-bad-rows to skip such rows)`);
      skipped.push({ file, line, reason: e.message });
    }
  };
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (!raw) continue;
    if (opts.shouldStop?.()) throw new VlmkitError('E_INTERRUPTED', `interrupted while reading ${file} (row ${rows + 1}); nothing was trained`);
    if (rows % 100 === 0) opts.onRow?.(rows, total);
    rows++;
    const line = i + 1;
    const result = (async () => {
      let obj: unknown;
      try {
        obj = JSON.parse(raw);
      } catch (e) {
        bad(`not valid JSON (${(e as Error).message})`);
      }
      return encode(obj, line, baseDir);
    })();
    // settled in order below; until then a failure must not count as unhandled
    result.catch(() => {});
    pending.push({ line, result });
    if (pending.length >= WINDOW) await settle(pending.shift()!);
  }
  while (pending.length) await settle(pending.shift()!);
  if (!examples.length)
    throw new VlmkitError('E_DATA', `${file}: no usable ${what}${rows ? ` (${skipped.length} of ${rows} skipped as bad)` : ' (the file is empty)'}`);
  opts.onRow?.(rows, total);
  return { examples, skipped, rows };
}

/** Decodes the images of some examples (for the collator); rows with videos: use loadExampleMedia. */
export async function loadExampleImages(processor: Processor, examples: readonly SftExample[]): Promise<RgbImage[][]> {
  return (await loadExampleMedia(processor, examples)).images;
}

/** Pictures and video frames of a framed sample: what the prompt holds a pixel block for. */
function pixelBlocks(framed: FramedSample): number {
  return (framed.images?.length ?? 0) + (framed.videoPrompts ?? []).reduce((a, v) => a + v.timestamps.length, 0);
}

/**
 * The pixels of some examples for the collator: images decoded and videos sampled again exactly as when the row
 * was tokenized, in prompt order, with each one's config (video frames: their square config).
 */
export async function loadExampleMedia(processor: Processor, examples: readonly SftExample[], video?: VideoOptions): Promise<{ images: RgbImage[][]; configs: (ImageProcessorConfig | undefined)[][] }> {
  const images: RgbImage[][] = [];
  const configs: (ImageProcessorConfig | undefined)[][] = [];
  // one row at a time: a row's videos each run one ffmpeg
  for (const ex of examples) {
    try {
      if (!ex.videos?.length) {
        const l = await processor.loadImages(ex.images);
        images.push(l);
        configs.push(l.map(() => undefined));
        continue;
      }
      const framed = (await processor.withFrames([{ messages: ex.rowMessages, images: ex.images, videos: ex.videos }], video))[0]!;
      const got = pixelBlocks(framed);
      if (ex.pixelBlocks !== undefined && got !== ex.pixelBlocks) {
        throw new VlmkitError('E_VIDEO', `its pictures and video frames number ${got} now, ${ex.pixelBlocks} when the data set loaded (a clip changed, or its stream decodes fewer frames than its header reports); re-encode the clip (ffmpeg -i in.mp4 out.mp4) and load the data again`);
      }
      const decoded = await processor.loadImages(framed.images ?? []);
      const px = processor.pixelsInOrder({ ...framed, images: decoded }, ex.rendered);
      images.push(px.images);
      configs.push(px.configs);
    } catch (e) {
      throw rowError(ex.file, ex.line, e instanceof Error ? e.message : String(e));
    }
  }
  return { images, configs };
}

// ------------------------------------------------------------------------------------------------ batch order

/** mulberry32: a tiny seeded generator whose whole state is one 32-bit integer (saved in checkpoints). */
export class SeededRng {
  state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** Seeded Fisher-Yates permutation of 0..n-1. */
export function permutation(n: number, rng: SeededRng): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

export interface BatchOrderOptions {
  batchSize: number;
  seed: number;
  /** shuffle each epoch (default true) */
  shuffle?: boolean;
  /**
   * group rows of similar length (transformers' LengthGroupedSampler): shuffle, cut into mega-batches of
   * batchSize x groupSize rows, sort each by length (longest first), the longest batch of all goes first
   */
  groupByLength?: boolean;
  /** mega-batch size in batches (default 50, as transformers) */
  groupSize?: number;
  /** drop a last incomplete batch (default false) */
  dropLast?: boolean;
}

/** The batches of every epoch as lists of example indices: a pure function of (seed, epoch), so a resumed run sees the same order. */
export class BatchOrder {
  readonly lengths: readonly number[];
  readonly options: BatchOrderOptions;

  constructor(lengths: readonly number[], o: BatchOrderOptions) {
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new VlmkitError('E_ARGS', `batch size must be an integer >= 1, got ${o.batchSize}`);
    this.lengths = lengths;
    this.options = o;
  }

  /** batches per epoch */
  get batchesPerEpoch(): number {
    const n = this.lengths.length, b = this.options.batchSize;
    return this.options.dropLast ? Math.floor(n / b) : Math.ceil(n / b);
  }

  epoch(e: number): number[][] {
    const n = this.lengths.length;
    const { batchSize: bs, shuffle = true, groupByLength = false, dropLast = false } = this.options;
    // a distinct stream per (seed, epoch)
    const rng = new SeededRng((Math.imul(this.options.seed >>> 0, 0x9e3779b1) ^ Math.imul(e + 1, 0x85ebca6b)) >>> 0);
    let order = shuffle ? permutation(n, rng) : Array.from({ length: n }, (_, i) => i);
    if (groupByLength) {
      const mega = bs * (this.options.groupSize ?? 50);
      const out: number[] = [];
      for (let i = 0; i < n; i += mega) {
        const chunk = order.slice(i, i + mega).sort((a, b) => this.lengths[b]! - this.lengths[a]! || a - b);
        out.push(...chunk);
      }
      order = out;
    }
    const batches: number[][] = [];
    for (let i = 0; i < n; i += bs) {
      const b = order.slice(i, i + bs);
      if (b.length < bs && dropLast) break;
      batches.push(b);
    }
    if (groupByLength && batches.length > 1) {
      // the batch holding the longest row first (fail early on memory), as transformers does
      let best = 0;
      batches.forEach((b, i) => {
        if (Math.max(...b.map((x) => this.lengths[x]!)) > Math.max(...batches[best]!.map((x) => this.lengths[x]!))) best = i;
      });
      [batches[0], batches[best]] = [batches[best]!, batches[0]!];
    }
    return batches;
  }
}
