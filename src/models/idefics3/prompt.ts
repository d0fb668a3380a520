// Prompt expansion for Idefics3 / SmolVLM, ported from the behaviour of transformers' Idefics3Processor and
// SmolVLMProcessor, plus helpers that turn a conversation into token ids and pad batches.
//
// Every `<image>` placeholder in the rendered prompt stands for one image. Given that image's split grid
// (rows x cols tiles, decided by the image processor) and image_seq_len (tokens per tile, processor config):
//   split (rows, cols > 0):  for each row r, for each col c: <fake_token_around_image><row_r_col_c><image>*seq ;
//                            "\n" after every row; then "\n<fake_token_around_image><global-img><image>*seq<fake_token_around_image>"
//   unsplit (rows = cols = 0): "<fake_token_around_image><global-img><image>*seq<fake_token_around_image>"
// A SmolVLM2 `<video>` placeholder becomes an intro line naming the frame count (in words) and the duration
// (H:MM:SS), then per frame "\nFrame from MM:SS:" and the unsplit image form, then "\n\n".
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VlmkitError } from '../../errors.js';
import { ModelDir } from '../../io/model-dir.js';
import { ChatTemplate, SMOLVLM_VIDEO_CHAT_TEMPLATE, hasVideo, type ChatMessage, type RenderOptions } from '../../processing/chat-template.js';
import {
  FAKE_IMAGE_TOKEN,
  GLOBAL_IMAGE_TOKEN,
  IMAGE_TOKEN,
  Tokenizer,
  VIDEO_TOKEN,
  rowColToken,
} from '../../processing/tokenizer.js';

/** How the image processor split one image: rows x cols tiles plus the global image; 0 x 0 = not split. */
export interface ImageGrid {
  rows: number;
  cols: number;
}

/** What the video prompt needs to know about one video. */
export interface VideoPromptInfo {
  /** time of each sampled frame in seconds (frame index / fps) */
  timestamps: readonly number[];
  /** video duration in seconds (written as H:MM:SS, whole seconds) */
  duration: number;
  /** frame count written in the intro; default timestamps.length (transformers uses the batch's padded count) */
  frameCount?: number;
}

export interface PromptConfig {
  /** `<image>` tokens per tile (processor_config.json image_seq_len) */
  imageSeqLen: number;
  /** config.json model_type: 'idefics3' or 'smolvlm' */
  modelType?: string;
  /** config.json pad_token_id, used when the tokenizer has no pad token */
  padTokenId?: number | null;
  /** template variables transformers passes for SmolVLM (num_frames, fps of the video processor) */
  templateVariables?: Record<string, unknown>;
}

function promptError(message: string): VlmkitError {
  return new VlmkitError('E_PROMPT', message);
}


/**
 * Reads image_seq_len (processor_config.json; computed from config.json as transformers documents it,
 * ((image_size / patch_size)^2) / scale_factor^2, when absent), model_type and pad_token_id.
 */
export function loadPromptConfig(dir: string | ModelDir): PromptConfig {
  const md = ModelDir.of(dir);
  const proc = md.json('processor_config.json');
  const cfg = md.json('config.json');
  let imageSeqLen = typeof proc?.image_seq_len === 'number' ? proc.image_seq_len : undefined;
  if (imageSeqLen === undefined && cfg) {
    const vc = cfg.vision_config as { image_size?: number; patch_size?: number } | undefined;
    const sf = typeof cfg.scale_factor === 'number' ? cfg.scale_factor : undefined;
    if (vc?.image_size && vc.patch_size && sf) imageSeqLen = Math.trunc((Math.trunc(vc.image_size / vc.patch_size) ** 2) / (sf * sf));
  }
  if (imageSeqLen === undefined) {
    throw new VlmkitError(
      'E_FILE',
      `cannot tell image_seq_len for ${md.dir}: processor_config.json has no "image_seq_len" and config.json no vision_config.image_size/patch_size + scale_factor; copy processor_config.json from the original checkpoint`,
    );
  }
  const textCfg = cfg?.text_config as { pad_token_id?: unknown } | undefined;
  const pad = typeof cfg?.pad_token_id === 'number' ? cfg.pad_token_id : typeof textCfg?.pad_token_id === 'number' ? textCfg.pad_token_id : null;
  const vp = proc?.video_processor as { num_frames?: unknown; fps?: unknown } | undefined;
  const templateVariables: Record<string, unknown> = {};
  if (vp?.num_frames !== undefined) templateVariables.num_frames = vp.num_frames;
  if (vp?.fps !== undefined) templateVariables.fps = vp.fps;
  return {
    imageSeqLen,
    modelType: typeof cfg?.model_type === 'string' ? cfg.model_type : undefined,
    padTokenId: pad,
    templateVariables,
  };
}

/** Non-overlapping occurrences of `token` in `text`. */
export function countToken(text: string, token: string): number {
  return text.split(token).length - 1;
}

function checkSeqLen(imageSeqLen: number): void {
  if (!Number.isInteger(imageSeqLen) || imageSeqLen <= 0) {
    throw promptError(`image_seq_len must be a positive integer, got ${imageSeqLen}; check processor_config.json`);
  }
}

/** The unsplit form: the global image alone. */
export function singleImagePrompt(imageSeqLen: number): string {
  checkSeqLen(imageSeqLen);
  return FAKE_IMAGE_TOKEN + GLOBAL_IMAGE_TOKEN + IMAGE_TOKEN.repeat(imageSeqLen) + FAKE_IMAGE_TOKEN;
}

/** The text one `<image>` placeholder expands to, given that image's grid. */
export function imagePromptString(grid: ImageGrid, imageSeqLen: number): string {
  checkSeqLen(imageSeqLen);
  const { rows, cols } = grid;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0 || (rows === 0) !== (cols === 0)) {
    throw promptError(`image grid {rows: ${rows}, cols: ${cols}} is invalid: both must be positive integers, or both 0 for an unsplit image`);
  }
  if (rows === 0) return singleImagePrompt(imageSeqLen);
  const tile = IMAGE_TOKEN.repeat(imageSeqLen);
  let s = '';
  for (let r = 1; r <= rows; r++) {
    for (let c = 1; c <= cols; c++) s += FAKE_IMAGE_TOKEN + rowColToken(r, c) + tile;
    s += '\n';
  }
  return s + '\n' + singleImagePrompt(imageSeqLen);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Replaces each `token` placeholder, in order, by its item's expansion; the counts must match. */
function expandPlaceholders<T>(text: string, token: string, kind: 'image' | 'video', items: readonly T[], expand: (item: T) => string): string {
  const pieces = text.split(token);
  const placeholders = pieces.length - 1;
  if (placeholders !== items.length) {
    throw promptError(
      `the prompt has ${plural(placeholders, token + ' placeholder')} but ${plural(items.length, kind)} ` +
        `${items.length === 1 ? 'was' : 'were'} given; pass exactly one ${kind} per ${token} ` +
        `(one {type:'${kind}'} part per ${kind} in the messages), or remove the extra placeholders/${kind}s`,
    );
  }
  let out = pieces[0]!;
  for (let i = 0; i < items.length; i++) out += expand(items[i]!) + pieces[i + 1]!;
  return out;
}

/** Replaces each `<image>` placeholder, in order, by its image's expansion. */
export function expandImagePrompt(text: string, grids: readonly ImageGrid[], imageSeqLen: number): string {
  return expandPlaceholders(text, IMAGE_TOKEN, 'image', grids, (g) => imagePromptString(g, imageSeqLen));
}

const ONES = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve',
  'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen'];
const TENS = ['', '', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty', 'ninety'];
const SCALES: [number, string][] = [[1e15, 'quadrillion'], [1e12, 'trillion'], [1e9, 'billion'], [1e6, 'million'], [1e3, 'thousand']];

/** English cardinal in the style of Python's num2words (which transformers uses): 6 -> "six", 21 -> "twenty-one", 1234 -> "one thousand, two hundred and thirty-four". */
export function numberToWords(n: number): string {
  if (!Number.isSafeInteger(n)) throw promptError(`cannot spell ${n} in words: expected an integer`);
  if (n < 0) return 'minus ' + numberToWords(-n);
  if (n < 20) return ONES[n]!;
  if (n < 100) {
    const r = n % 10;
    return TENS[Math.floor(n / 10)]! + (r ? '-' + ONES[r] : '');
  }
  if (n < 1000) {
    const r = n % 100;
    return ONES[Math.floor(n / 100)] + ' hundred' + (r ? ' and ' + numberToWords(r) : '');
  }
  for (const [scale, name] of SCALES) {
    if (n >= scale) {
      const hi = Math.floor(n / scale);
      const r = n - hi * scale;
      const head = numberToWords(hi) + ' ' + name;
      if (r === 0) return head;
      return head + (r < 100 ? ' and ' : ', ') + numberToWords(r);
    }
  }
  throw new Error('unreachable');
}

/** Whole seconds as Python's str(timedelta(seconds=s)): "0:00:03", "1:02:03", "2 days, 0:00:01". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) throw promptError(`video duration must be a non-negative number of seconds, got ${seconds}`);
  let s = Math.trunc(seconds);
  const days = Math.floor(s / 86400);
  s -= days * 86400;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const hms = `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
  return days ? `${plural(days, 'day')}, ${hms}` : hms;
}

/** Frame times in seconds for sampled frame indices of a video with the given fps (transformers' VideoMetadata.timestamps). */
export function videoFrameTimestamps(frameIndices: readonly number[], fps: number): number[] {
  if (!(fps > 0)) throw promptError(`video fps must be positive, got ${fps}; pass the source video's frame rate`);
  return frameIndices.map((i) => i / fps);
}

/** The text one `<video>` placeholder expands to. */
export function videoPromptString(video: VideoPromptInfo, imageSeqLen: number): string {
  const n = video.frameCount ?? video.timestamps.length;
  let s = `You are provided the following series of ${numberToWords(n)} frames from a ${formatDuration(video.duration)} [H:MM:SS] video.\n`;
  const frame = singleImagePrompt(imageSeqLen);
  for (const t of video.timestamps) {
    if (!Number.isFinite(t) || t < 0) throw promptError(`video frame timestamp ${t} is invalid: expected seconds >= 0`);
    const mm = Math.floor(t / 60);
    const ss = Math.floor(t % 60);
    s += `\nFrame from ${String(mm).padStart(2, '0')}:${String(ss).padStart(2, '0')}:` + frame;
  }
  return s + '\n\n';
}

/** Replaces each `<video>` placeholder, in order, by its video's expansion (SmolVLM2). */
export function expandVideoPrompt(text: string, videos: readonly VideoPromptInfo[], imageSeqLen: number): string {
  return expandPlaceholders(text, VIDEO_TOKEN, 'video', videos, (v) => videoPromptString(v, imageSeqLen));
}

/** Expands images then videos (an image placeholder must not be confused with the `<image>`s a video expands to). */
export function expandPrompt(text: string, media: { images?: readonly ImageGrid[]; videos?: readonly VideoPromptInfo[] }, imageSeqLen: number): string {
  const withImages = expandImagePrompt(text, media.images ?? [], imageSeqLen);
  return expandVideoPrompt(withImages, media.videos ?? [], imageSeqLen);
}

export interface BuildPromptInput {
  tokenizer: Tokenizer;
  config: PromptConfig;
  /** the conversation; rendered with chatTemplate */
  messages?: readonly ChatMessage[];
  /** or an already rendered prompt (with `<image>` / `<video>` placeholders) */
  text?: string;
  /** needed with messages: a compiled template or its text */
  chatTemplate?: ChatTemplate | string;
  /** default true (generation); false for a full training conversation */
  addGenerationPrompt?: boolean;
  /** split grid per image, in placeholder order */
  images?: readonly ImageGrid[];
  /** per video, in placeholder order (SmolVLM2) */
  videos?: readonly VideoPromptInfo[];
  /** extra template variables */
  templateVariables?: Record<string, unknown>;
  /** default true, as the processors tokenize */
  addSpecialTokens?: boolean;
}

export interface BuiltPrompt {
  /** rendered chat prompt, placeholders not yet expanded */
  prompt: string;
  /** expanded prompt, what gets tokenized */
  text: string;
  inputIds: number[];
}

function specialTokenVars(tok: Tokenizer): RenderOptions['specialTokens'] {
  return { bos_token: tok.bosToken, eos_token: tok.eosToken, pad_token: tok.padToken, unk_token: tok.unkToken };
}

/** Messages (or a rendered prompt) + per-image grids + config -> expanded text and input ids. */
export function buildPrompt(input: BuildPromptInput): BuiltPrompt {
  let prompt: string;
  if (input.messages !== undefined) {
    if (input.text !== undefined) throw promptError('buildPrompt takes messages or text, not both; drop one');
    if (input.chatTemplate === undefined) {
      throw new VlmkitError('E_TEMPLATE', 'buildPrompt got messages but no chat template; pass chatTemplate (ChatTemplate.fromDir(modelDir)) or a rendered text');
    }
    const tpl = typeof input.chatTemplate === 'string' ? new ChatTemplate(input.chatTemplate) : input.chatTemplate;
    prompt = tpl.render(input.messages, {
      addGenerationPrompt: input.addGenerationPrompt ?? true,
      specialTokens: specialTokenVars(input.tokenizer),
      variables: { ...input.config.templateVariables, ...input.templateVariables },
    });
  } else if (input.text !== undefined) {
    prompt = input.text;
  } else {
    throw promptError('buildPrompt needs messages or text');
  }
  const text = expandPrompt(prompt, { images: input.images, videos: input.videos }, input.config.imageSeqLen);
  const inputIds = input.tokenizer.encode(text, { addSpecialTokens: input.addSpecialTokens ?? true });
  return { prompt, text, inputIds };
}

export type PaddingSide = 'left' | 'right';

export interface PadOptions {
  side: PaddingSide;
  padId: number;
  /** pad to at least this length (default: the longest sequence) */
  length?: number;
  /** round the padded length up to a multiple of this */
  padToMultipleOf?: number;
}

export interface PaddedBatch {
  /** [batch][seqLen] */
  inputIds: number[][];
  /** [batch][seqLen], 1 for tokens, 0 for padding */
  attentionMask: number[][];
  batchSize: number;
  seqLen: number;
  side: PaddingSide;
}

/** Pads sequences to one length: left padding for generation, right padding for training. */
export function padBatch(seqs: readonly (readonly number[])[], opts: PadOptions): PaddedBatch {
  if (!Number.isInteger(opts.padId) || opts.padId < 0) throw promptError(`pad id must be a non-negative integer, got ${opts.padId}`);
  let len = Math.max(0, opts.length ?? 0, ...seqs.map((s) => s.length));
  const m = opts.padToMultipleOf;
  if (m !== undefined && m > 1) len = Math.ceil(len / m) * m;
  const inputIds: number[][] = [];
  const attentionMask: number[][] = [];
  for (const s of seqs) {
    const k = len - s.length;
    const pads = new Array<number>(k).fill(opts.padId);
    const zeros = new Array<number>(k).fill(0);
    const ones = new Array<number>(s.length).fill(1);
    if (opts.side === 'left') {
      inputIds.push([...pads, ...s]);
      attentionMask.push([...zeros, ...ones]);
    } else {
      inputIds.push([...s, ...pads]);
      attentionMask.push([...ones, ...zeros]);
    }
  }
  return { inputIds, attentionMask, batchSize: seqs.length, seqLen: len, side: opts.side };
}

export function padLeft(seqs: readonly (readonly number[])[], padId: number): PaddedBatch {
  return padBatch(seqs, { side: 'left', padId });
}

export function padRight(seqs: readonly (readonly number[])[], padId: number): PaddedBatch {
  return padBatch(seqs, { side: 'right', padId });
}

export interface BatchPrompt extends PaddedBatch {
  prompts: BuiltPrompt[];
}

/**
 * Builds every sample with buildPrompt, then pads. side: 'left' for generation (default), 'right' for training.
 * The pad id is the tokenizer's pad token, else config.padTokenId, else eos.
 */
export function buildPromptBatch(
  samples: readonly Omit<BuildPromptInput, 'tokenizer' | 'config'>[],
  common: { tokenizer: Tokenizer; config: PromptConfig; side?: PaddingSide; padToMultipleOf?: number },
): BatchPrompt {
  const prompts = samples.map((s, i) => {
    try {
      return buildPrompt({ ...s, tokenizer: common.tokenizer, config: common.config });
    } catch (e) {
      if (e instanceof VlmkitError && samples.length > 1) throw new VlmkitError(e.code, `batch sample ${i}: ${e.message}`);
      throw e;
    }
  });
  const padId = common.tokenizer.padId(common.config.padTokenId);
  const padded = padBatch(prompts.map((p) => p.inputIds), { side: common.side ?? 'left', padId, padToMultipleOf: common.padToMultipleOf });
  return { ...padded, prompts };
}

/** Flattens a padded batch into row-major typed arrays for the engine (input_ids as Int32, mask as Int32). */
export function batchToArrays(batch: PaddedBatch): { inputIds: Int32Array; attentionMask: Int32Array; shape: [number, number] } {
  const n = batch.batchSize * batch.seqLen;
  const inputIds = new Int32Array(n);
  const attentionMask = new Int32Array(n);
  for (let b = 0; b < batch.batchSize; b++) {
    inputIds.set(batch.inputIds[b]!, b * batch.seqLen);
    attentionMask.set(batch.attentionMask[b]!, b * batch.seqLen);
  }
  return { inputIds, attentionMask, shape: [batch.batchSize, batch.seqLen] };
}

/**
 * Everything text-side for one model directory: tokenizer, chat template (loaded on first use, so text-only
 * callers need none), prompt config.
 */
export class PromptBuilder {
  readonly dir: string;
  private readonly modelDir: string | ModelDir;
  readonly tokenizer: Tokenizer;
  readonly config: PromptConfig;
  private template: ChatTemplate | null = null;

  constructor(dir: string | ModelDir, tokenizer: Tokenizer, config: PromptConfig) {
    this.modelDir = dir;
    this.dir = typeof dir === 'string' ? dir : dir.dir;
    this.tokenizer = tokenizer;
    this.config = config;
  }

  static fromDir(dir: string | ModelDir): PromptBuilder {
    const md = ModelDir.of(dir);
    return new PromptBuilder(md, Tokenizer.fromDir(md), loadPromptConfig(md));
  }

  /** The directory's chat template (E_TEMPLATE if it has none). */
  get chatTemplate(): ChatTemplate {
    this.template ??= ChatTemplate.fromDir(this.modelDir);
    return this.template;
  }

  /**
   * Renders and expands a conversation. Like transformers' SmolVLMProcessor, a SmolVLM conversation with a video
   * uses SmolVLM's video-aware default template unless a template is passed explicitly.
   */
  build(
    messages: readonly ChatMessage[],
    media: { images?: readonly ImageGrid[]; videos?: readonly VideoPromptInfo[] } = {},
    opts: { addGenerationPrompt?: boolean; chatTemplate?: ChatTemplate | string; templateVariables?: Record<string, unknown> } = {},
  ): BuiltPrompt {
    let tpl = opts.chatTemplate;
    if (tpl === undefined) tpl = this.config.modelType === 'smolvlm' && hasVideo(messages) ? SMOLVLM_VIDEO_CHAT_TEMPLATE : this.chatTemplate;
    return buildPrompt({ ...media, ...opts, messages, chatTemplate: tpl, tokenizer: this.tokenizer, config: this.config });
  }

  /** Expands and tokenizes an already rendered prompt. */
  buildText(text: string, media: { images?: readonly ImageGrid[]; videos?: readonly VideoPromptInfo[] } = {}): BuiltPrompt {
    return buildPrompt({ ...media, text, tokenizer: this.tokenizer, config: this.config });
  }

  padId(): number {
    return this.tokenizer.padId(this.config.padTokenId);
  }
}
