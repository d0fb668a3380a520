// The SFT collator: conversations (already rendered and tokenized by encodeConversation) and their decoded images
// -> one right-padded training batch {inputIds, attentionMask, pixelValues, pixelAttentionMask, labels}.
//
// Labels follow TRL / the reference fixture (idefics3_lora_sft_step): labels = input_ids, with
//   - padding -> -100 (we mask by the attention mask, so a pad id that also occurs as a real token stays trained),
//   - <image> tokens -> -100 (the <fake_token_around_image>, <row_R_col_C> and <global-img> tokens around them
//     are ordinary targets, exactly as TRL and the fixture's `labels` leave them),
//   - with assistantOnly, every token outside an assistant reply -> -100 (fixture `labels_completion`): a reply
//     runs from the end of the prompt rendered with the generation prefix ("Assistant:") to the end of the
//     message, its <end_of_utterance> and newline included.
// Labels are not shifted: the loss compares the logits at position t with labels[t + 1].
import { tensor } from '../engine/index.js';
import type { Tensor } from '../engine/tensor.js';
import { VlmkitError } from '../errors.js';
import type { ChatMessage } from '../processing/chat-template.js';
import type { RgbImage } from '../processing/decode.js';
import { type ImageGrid, type ImageProcessorConfig, type Processor, type PromptBuilder, type VideoPromptInfo, processImages } from '../models/index.js';

export const IGNORE_INDEX = -100;

/** A conversation as token ids, with where each trained assistant reply sits: [start, end) token ranges. */
export interface EncodedConversation {
  inputIds: number[];
  /** the assistant replies that take part in an assistant-only / completion-only loss, in order */
  assistantSpans: [number, number][];
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

function countVideos(messages: readonly ChatMessage[]): number {
  let n = 0;
  for (const m of messages) if (Array.isArray(m.content)) for (const p of m.content) if (p.type === 'video') n++;
  return n;
}

function countImages(messages: readonly ChatMessage[]): number {
  let n = 0;
  for (const m of messages) {
    if (typeof m.content === 'string') n += m.content.split('<image>').length - 1;
    else for (const p of m.content) {
      if (p.type === 'image') n++;
      else if (p.type === 'text') n += (p as { text: string }).text.split('<image>').length - 1;
    }
  }
  return n;
}

/**
 * Renders a full conversation (no generation prompt), expands its images by their grids and tokenizes it; finds
 * the token range of every assistant message at index >= firstTrained. A reply starts where the conversation up
 * to it, rendered with the generation prompt, ends (token-wise: the common prefix with the full ids, so a merge
 * across the boundary cannot shift it) and ends where the conversation including it ends.
 */
export function encodeConversation(
  builder: PromptBuilder,
  messages: readonly ChatMessage[],
  grids: readonly ImageGrid[],
  firstTrained = 0,
  videos: readonly VideoPromptInfo[] = [],
): EncodedConversation {
  // the media of the first messages: a prefix of the conversation expands exactly as inference expands it
  const media = (ms: readonly ChatMessage[]) => ({ images: grids.slice(0, countImages(ms)), videos: videos.slice(0, countVideos(ms)) });
  const full = builder.build(messages, { images: grids, videos }, { addGenerationPrompt: false }).inputIds;
  const spans: [number, number][] = [];
  for (let i = Math.max(0, firstTrained); i < messages.length; i++) {
    if (messages[i]!.role !== 'assistant') continue;
    const before = messages.slice(0, i);
    const upto = messages.slice(0, i + 1);
    const pre = builder.build(before, media(before), { addGenerationPrompt: true }).inputIds;
    const end = builder.build(upto, media(upto), { addGenerationPrompt: false }).inputIds;
    const s = Math.min(pre.length, commonPrefix(pre, full));
    const e = Math.min(end.length, commonPrefix(end, full));
    if (e > s) spans.push([s, e]);
  }
  return { inputIds: full, assistantSpans: spans };
}

export interface LabelOptions {
  /** the <image> token id (masked) */
  imageTokenId: number;
  /** train only on the assistant spans */
  assistantOnly?: boolean;
}

/** Unshifted labels of one unpadded sequence. */
export function labelsFor(ids: readonly number[], spans: readonly (readonly [number, number])[], o: LabelOptions): number[] {
  const out = ids.map((t) => (t === o.imageTokenId ? IGNORE_INDEX : t));
  if (o.assistantOnly) {
    const keep = new Uint8Array(ids.length);
    for (const [s, e] of spans) keep.fill(1, s, Math.min(e, ids.length));
    for (let i = 0; i < out.length; i++) if (!keep[i]) out[i] = IGNORE_INDEX;
  }
  return out;
}

/** Number of targets a sequence's labels give the shifted loss (labels[1:] != -100). */
export function countTargets(labels: readonly number[]): number {
  let n = 0;
  for (let i = 1; i < labels.length; i++) if (labels[i] !== IGNORE_INDEX) n++;
  return n;
}

/**
 * The end of the last image's token block: one past its closing <fake_token_around_image> (or past the last
 * <image> token when none follows). 0 when the sequence has no image token.
 */
export function imageBlockEnd(ids: readonly number[], imageTokenId: number, fakeTokenId: number | null): number {
  let last = -1;
  for (let i = ids.length - 1; i >= 0; i--) if (ids[i] === imageTokenId) { last = i; break; }
  if (last < 0) return 0;
  return fakeTokenId !== null && ids[last + 1] === fakeTokenId ? last + 2 : last + 1;
}

export type TruncateResult =
  | { ok: true; conversation: EncodedConversation; truncated: boolean }
  | { ok: false; reason: string };

/**
 * Cuts a conversation to maxLength tokens when that keeps every image's token block whole and leaves something to
 * train on; otherwise says why it cannot (the caller drops the row or stops).
 */
export function truncateConversation(
  c: EncodedConversation,
  maxLength: number,
  o: { imageTokenId: number; fakeTokenId: number | null; assistantOnly?: boolean; truncate?: boolean },
): TruncateResult {
  const n = c.inputIds.length;
  if (n <= maxLength) return { ok: true, conversation: c, truncated: false };
  const end = imageBlockEnd(c.inputIds, o.imageTokenId, o.fakeTokenId);
  if (o.truncate === false) return { ok: false, reason: `${n} tokens exceed max length ${maxLength} (truncation is off)` };
  if (end > maxLength)
    return { ok: false, reason: `${n} tokens exceed max length ${maxLength} and a cut there would split an image's token block (images end at token ${end}); raise the max length, use fewer or smaller images, or turn image splitting off` };
  const ids = c.inputIds.slice(0, maxLength);
  const spans = c.assistantSpans.filter(([s]) => s < maxLength).map(([s, e]) => [s, Math.min(e, maxLength)] as [number, number]);
  const cut: EncodedConversation = { inputIds: ids, assistantSpans: spans };
  const left = countTargets(labelsFor(ids, spans, { imageTokenId: o.imageTokenId, assistantOnly: o.assistantOnly }));
  if (left === 0)
    return { ok: false, reason: `${n} tokens exceed max length ${maxLength} and cut there no ${o.assistantOnly ? 'assistant reply' : 'text'} token is left to train on; raise the max length` };
  return { ok: true, conversation: cut, truncated: true };
}

/** What the collator needs of one example. */
export interface CollateItem extends EncodedConversation {
  /** the split grid of each image, as the ids were expanded with */
  grids: readonly ImageGrid[];
  /** for messages: "train.jsonl:12" */
  where?: string;
  /** mask everything outside the assistant spans for this row even without assistantOnly (prompt/completion rows) */
  completionOnly?: boolean;
}

/** A padded batch; tensors are the engine's (dispose() frees them). Host copies of ids/labels for the loss. */
export interface SftBatch {
  /** [B, T] i32 */
  inputIds: Tensor;
  /** [B, T] i32, 1 = token, 0 = padding */
  attentionMask: Tensor;
  /** [B, N, 3, S, S] f32, absent when no row has an image */
  pixelValues: Tensor | null;
  /** [B, N, S, S] u8 */
  pixelAttentionMask: Tensor | null;
  /** [B, T] unshifted labels, -100 = no loss (host side; the loss gathers the targets it needs) */
  labels: Int32Array;
  ids: Int32Array;
  batchSize: number;
  seqLen: number;
  /** shifted targets that count in the loss (labels[:, 1:] != -100) */
  numTargets: number;
  /** real tokens (attention mask ones) */
  numTokens: number;
  /** real image tiles */
  numTiles: number;
  dispose(): void;
}

export interface CollatorOptions {
  assistantOnly?: boolean;
  /** round the padded length up to a multiple of this (default 1) */
  padToMultipleOf?: number;
}

/** Pads, masks and turns examples + decoded images into tensors. */
export class SftCollator {
  readonly imageTokenId: number;
  readonly padId: number;
  readonly imageConfig: ImageProcessorConfig;
  readonly options: CollatorOptions;
  private readonly backend: Processor['options']['backend'];

  constructor(processor: Processor, o: CollatorOptions = {}) {
    const img = processor.tokenizer.specialIds.image;
    if (img === null) throw new VlmkitError('E_TOKENIZER', `the tokenizer of ${processor.dir} has no <image> token; is this a SmolVLM / Idefics3 checkpoint?`);
    this.imageTokenId = img;
    this.padId = processor.prompt.padId();
    this.imageConfig = processor.imageConfigFor();
    this.options = o;
    this.backend = processor.options.backend;
  }

  labels(item: EncodedConversation & { completionOnly?: boolean }): number[] {
    const assistantOnly = this.options.assistantOnly || item.completionOnly === true;
    return labelsFor(item.inputIds, item.assistantSpans, { imageTokenId: this.imageTokenId, assistantOnly });
  }

  /**
   * `configs`, per row and image: the config of a video frame (already square, never split); a row without it, or
   * an undefined entry, takes the image processor's.
   */
  collate(items: readonly CollateItem[], images: readonly (readonly RgbImage[])[], configs?: readonly (readonly (ImageProcessorConfig | undefined)[])[]): SftBatch {
    if (!items.length) throw new VlmkitError('E_DATA', 'cannot collate an empty batch');
    if (images.length !== items.length) throw new Error(`vlmkit internal: ${items.length} examples but ${images.length} image lists`);
    const B = items.length;
    let T = Math.max(...items.map((x) => x.inputIds.length));
    const m = this.options.padToMultipleOf ?? 1;
    if (m > 1) T = Math.ceil(T / m) * m;
    const ids = new Int32Array(B * T).fill(this.padId);
    const mask = new Int32Array(B * T);
    const labels = new Int32Array(B * T).fill(IGNORE_INDEX);
    let numTargets = 0, numTokens = 0;
    items.forEach((x, b) => {
      const lab = this.labels(x);
      ids.set(x.inputIds, b * T);
      mask.fill(1, b * T, b * T + x.inputIds.length);
      labels.set(lab, b * T);
      numTargets += countTargets(lab);
      numTokens += x.inputIds.length;
    });
    const any = images.some((l) => l.length > 0);
    const made: Tensor[] = [];
    const mk = (t: Tensor) => (made.push(t), t);
    let pixelValues: Tensor | null = null, pixelAttentionMask: Tensor | null = null, numTiles = 0;
    if (any) {
      const p = processImages(images.map((l) => [...l]), this.imageConfig, configs?.map((l) => [...l]));
      // the grids the ids were expanded with must be the ones the image processor gives now (frames have none)
      p.grids.map((gs, b) => gs.filter((_, i) => configs?.[b]?.[i] === undefined)).forEach((gs, b) => {
        const want = items[b]!.grids;
        if (gs.length !== want.length || gs.some((g, i) => g.rows !== want[i]!.rows || g.cols !== want[i]!.cols))
          throw new VlmkitError('E_DATA', `${items[b]!.where ?? `batch row ${b}`}: the images split into ${JSON.stringify(gs)} tiles now but ${JSON.stringify(want)} when the row was tokenized; was an image file changed during training?`);
      });
      numTiles = p.tileCounts.reduce((a, c) => a + c, 0);
      pixelValues = mk(tensor(p.pixelValues, p.pixelValuesShape, { dtype: 'f32', backend: this.backend }));
      pixelAttentionMask = mk(tensor(p.pixelAttentionMask, p.pixelAttentionMaskShape, { dtype: 'u8', backend: this.backend }));
    }
    return {
      inputIds: mk(tensor(ids, [B, T], { dtype: 'i32', backend: this.backend })),
      attentionMask: mk(tensor(mask, [B, T], { dtype: 'i32', backend: this.backend })),
      pixelValues,
      pixelAttentionMask,
      labels,
      ids,
      batchSize: B,
      seqLen: T,
      numTargets,
      numTokens,
      numTiles,
      dispose: () => {
        for (const t of made) t.dispose();
      },
    };
  }
}
