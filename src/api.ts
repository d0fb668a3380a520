// The library API: load a model directory (SmolVLM / Idefics3 today; the family comes from models/index.ts) once, then build inputs, run the forward,
// generate (text, token ids, timings) or stream text pieces as they are made.
//
//   const vlm = await loadVlm('SmolVLM-256M-Instruct');
//   const { text, timings } = await vlm.generate('What is in this image?', ['photo.jpg'], { maxNewTokens: 64 });
//   for await (const piece of vlm.stream('Describe it.', ['photo.jpg'])) process.stdout.write(piece);
import type { QuantFormat } from './engine/quant/formats.js';
import type { Tensor } from './engine/tensor.js';
import { VlmkitError } from './errors.js';
import { generateStream, type GenerateOptions, type GenerationOutput } from './generate/generate.js';
import { PromptCache } from './generate/prompt-cache.js';
import { loadGenerationConfig, type GenerationConfig } from './generate/stopping.js';
import type { FinishReason, GenerationTimings, ModelInputs } from './generate/types.js';
import {
  type EncodedBatch, type ImageInput, type ImageOptions, type ModelConfig, type ModelFamily, type Processor, type ProcessorSample,
  type VisionLanguageModel, type DescribeOptions, type ModelDescription, type ProcessorOptions, type VideoInput, type VideoOptions,
  contextLength, describeModel as describeModelDir, loadModelWeights, loadProcessor, readModelConfig, userMessage,
} from './models/index.js';
import type { ChatMessage } from './processing/chat-template.js';
import type { AlphaMode } from './processing/decode.js';
import { ModelDir } from './io/model-dir.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export { userMessage, checkMediaCount, type ProcessorSample, type ImageInput, type VideoInput, type VideoFrames } from './models/index.js';
import type { Tokenizer } from './processing/tokenizer.js';
import { expandHome } from './io/paths.js';

/** A question (becomes one user turn, images first), a conversation, or an already rendered prompt. */
export type PromptInput = string | readonly ChatMessage[] | { text: string };

export interface LoadVlmOptions {
  /** 'f32': every weight in f32 (parity, training). Default: weights stay in their stored dtype (bf16 etc.). */
  dtype?: 'f32';
  /** block-quantize the linears at load time: 'q8_0', 'q4_0' or 'nf4' (docs/quantization.md) */
  quant?: QuantFormat;
  /** how transparent images become RGB: 'drop' (transformers 5.x, default) or 'white' (4.x) */
  alpha?: AlphaMode;
  /** override the checkpoint's do_image_splitting */
  doImageSplitting?: boolean;
  /** override the checkpoint's size.longest_edge (pixels; see ImageOptions) */
  longestEdge?: number;
  /** refuse images whose header declares more pixels, before decoding (default PIL's limit; see ImageOptions) */
  maxImagePixels?: number;
}

export interface VlmGenerateOptions extends GenerateOptions, ImageOptions, VideoOptions {}

/**
 * What goes with a prompt: a list of images, or images and videos. A conversation's {type:'video', path} parts
 * name their files themselves (videos given here come first, one per video part).
 */
export type MediaInput = readonly ImageInput[] | { images?: readonly ImageInput[]; videos?: readonly VideoInput[] };

function splitMedia(m: MediaInput | undefined): { images: readonly ImageInput[]; videos: readonly VideoInput[] } {
  if (m === undefined) return { images: [], videos: [] };
  if (Array.isArray(m)) return { images: m, videos: [] };
  const o = m as { images?: readonly ImageInput[]; videos?: readonly VideoInput[] };
  return { images: o.images ?? [], videos: o.videos ?? [] };
}

/** The files a conversation's video parts name ({type:'video', path} or {type:'video', video}), in order; null when a part names none. */
function videoPaths(messages: readonly ChatMessage[]): (string | null)[] {
  const out: (string | null)[] = [];
  for (const m of messages) {
    if (!Array.isArray(m.content)) continue;
    for (const p of m.content) {
      if (p?.type !== 'video') continue;
      const v = (p as { path?: unknown }).path ?? (p as { video?: unknown }).video;
      out.push(typeof v === 'string' ? v : null);
    }
  }
  return out;
}

export interface GenerateResult {
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  /** tokens of the (unpadded) prompt */
  promptTokens: number;
  timings: GenerationTimings;
}

/** An async iterator of text pieces; `result` settles when the iteration ends. */
export interface TextStream extends AsyncIterable<string> {
  readonly result: Promise<GenerateResult>;
}

export interface BatchItem {
  prompt: PromptInput;
  images?: readonly ImageInput[];
  videos?: readonly VideoInput[];
}

/**
 * A conversation that keeps its KV cache between turns: each message re-renders the whole conversation, and the
 * part the model has already seen (earlier turns, their images) is not run again. One message at a time.
 */
export interface ChatSession {
  /** the conversation so far (the system message first, when given) */
  readonly messages: readonly ChatMessage[];
  /** every image of the conversation, in order */
  readonly images: readonly ImageInput[];
  /** every video of the conversation, in order */
  readonly videos: readonly VideoInput[];
  /** Adds a user turn (its videos and images first, then the text) and streams the answer, which joins the conversation. */
  send(text: string, media?: MediaInput, opts?: VlmGenerateOptions): TextStream;
  /** Starts over (the system message stays). */
  reset(): void;
  /** Frees the cache. */
  dispose(): void;
}

export interface Vlm {
  readonly dir: string;
  /** the model family config.json's model_type picked */
  readonly family: ModelFamily;
  readonly config: ModelConfig;
  readonly model: VisionLanguageModel;
  readonly processor: Processor;
  readonly tokenizer: Tokenizer;
  readonly generationConfig: GenerationConfig;
  /** the ids that end an answer by default: generation_config's eos, the tokenizer's eos and <end_of_utterance> */
  readonly eosTokenIds: readonly number[];
  /** Model inputs for one prompt (left-padded batch of one); dispose() them when done. */
  encode(prompt: PromptInput, media?: MediaInput, opts?: ImageOptions & VideoOptions & { addGenerationPrompt?: boolean }): Promise<EncodedBatch>;
  /** Logits [B, T, V] for every position (the caller disposes them); positions default to 0..T-1 as transformers' forward. */
  forward(inputs: ModelInputs & { positionIds?: Tensor }): Tensor;
  generate(prompt: PromptInput, media?: MediaInput, opts?: VlmGenerateOptions): Promise<GenerateResult>;
  /** Several prompts, each with its own images, generated together (left padding; finished rows leave the batch). */
  generateBatch(items: readonly BatchItem[], opts?: VlmGenerateOptions): Promise<GenerateResult[]>;
  stream(prompt: PromptInput, media?: MediaInput, opts?: VlmGenerateOptions): TextStream;
  /** A multi-turn conversation that reuses its KV cache from turn to turn. */
  chat(opts?: { system?: string }): ChatSession;
  dispose(): void;
}

/** A prompt as a processor sample. */
export function toSample(prompt: PromptInput, media?: MediaInput): ProcessorSample {
  const { images, videos } = splitMedia(media);
  if (typeof prompt === 'string') return { messages: [userMessage(prompt, images.length, videos.length)], images, videos };
  if (Array.isArray(prompt)) {
    const messages = prompt as readonly ChatMessage[];
    // video parts that name a file stand for themselves after the videos given
    const named = videoPaths(messages);
    const all: VideoInput[] = [...videos];
    for (let i = videos.length; i < named.length; i++) {
      const p = named[i];
      if (p === null || p === undefined) throw new VlmkitError('E_PROMPT', `video part ${i} names no file and no video was given for it; write {type:'video', path:'clip.mp4'} or pass videos`);
      all.push(p);
    }
    return { messages, images, videos: all };
  }
  const text = (prompt as { text?: unknown }).text;
  if (typeof text === 'string') return { text, images, videos };
  throw new VlmkitError('E_PROMPT', 'a prompt must be a string, a list of chat messages or {text: "<rendered prompt>"}');
}

/**
 * Generation settings: the caller's, else generation_config.json's, else transformers' defaults (top_k 50 when
 * sampling). A temperature > 0 from the caller turns sampling on; 0 means greedy.
 */
export function resolveGenerateOptions(gen: GenerationConfig, o: GenerateOptions, eosTokenIds: readonly number[]): GenerateOptions {
  const doSample = o.doSample ?? (o.temperature !== undefined ? o.temperature > 0 : gen.doSample ?? false);
  const pick = <T>(mine: T | undefined, theirs: T | undefined): T | undefined => mine ?? (doSample ? theirs : undefined);
  return {
    ...o,
    doSample,
    temperature: doSample ? (o.temperature ?? gen.temperature ?? 1) : undefined,
    topK: pick(o.topK, gen.topK ?? 50), // transformers' GenerationConfig default when sampling
    topP: pick(o.topP, gen.topP),
    repetitionPenalty: o.repetitionPenalty ?? gen.repetitionPenalty,
    maxNewTokens: o.maxNewTokens ?? gen.maxNewTokens ?? 256,
    eosTokenIds: o.eosTokenIds ?? eosTokenIds,
  };
}

function rowResult(out: GenerationOutput, row: number, promptTokens: number): GenerateResult {
  const r = out.rows[row]!;
  return { text: r.text, tokenIds: r.tokenIds, finishReason: r.finishReason, promptTokens, timings: out.timings };
}

class VlmImpl implements Vlm {
  readonly dir: string;
  readonly family: ModelFamily;
  readonly config: ModelConfig;
  readonly model: VisionLanguageModel;
  readonly processor: Processor;
  readonly generationConfig: GenerationConfig;
  readonly eosTokenIds: readonly number[];

  constructor(dir: string, family: ModelFamily, config: ModelConfig, model: VisionLanguageModel, processor: Processor, gen: GenerationConfig) {
    this.dir = dir;
    this.family = family;
    this.config = config;
    this.model = model;
    this.processor = processor;
    this.generationConfig = gen;
    const eos = new Set<number>(gen.eosTokenIds);
    const tok = processor.tokenizer;
    if (tok.specialIds.eos !== null) eos.add(tok.specialIds.eos);
    if (tok.specialIds.endOfUtterance !== null) eos.add(tok.specialIds.endOfUtterance);
    this.eosTokenIds = [...eos];
  }

  get tokenizer(): Tokenizer {
    return this.processor.tokenizer;
  }

  encode(prompt: PromptInput, media?: MediaInput, opts: ImageOptions & VideoOptions & { addGenerationPrompt?: boolean } = {}): Promise<EncodedBatch> {
    return this.processor.encode(toSample(prompt, media), opts);
  }

  forward(inputs: ModelInputs & { positionIds?: Tensor }): Tensor {
    return this.model.logits(inputs);
  }

  private async *events(items: readonly BatchItem[], opts: VlmGenerateOptions) {
    const enc = await this.processor.encodeBatch(
      items.map((it) => toSample(it.prompt, { images: it.images, videos: it.videos })),
      {
        padding: 'left', doImageSplitting: opts.doImageSplitting, longestEdge: opts.longestEdge, maxImagePixels: opts.maxImagePixels,
        fps: opts.fps, maxFrames: opts.maxFrames, onVideoFrame: opts.onVideoFrame,
      },
    );
    try {
      const o = resolveGenerateOptions(this.generationConfig, opts, this.eosTokenIds);
      const out: GenerationOutput = yield* generateStream(this.model, enc, { ...o, tokenizer: this.tokenizer });
      return { out, promptTokens: enc.prompts.map((p) => p.inputIds.length) };
    } finally {
      enc.dispose();
    }
  }

  async generate(prompt: PromptInput, media?: MediaInput, opts: VlmGenerateOptions = {}): Promise<GenerateResult> {
    return (await this.generateBatch([{ prompt, ...splitMedia(media) }], opts))[0]!;
  }

  async generateBatch(items: readonly BatchItem[], opts: VlmGenerateOptions = {}): Promise<GenerateResult[]> {
    if (items.length === 0) return [];
    const it = this.events(items, opts);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value.out.rows.map((_, i) => rowResult(r.value.out, i, r.value.promptTokens[i]!));
    }
  }

  stream(prompt: PromptInput, media?: MediaInput, opts: VlmGenerateOptions = {}): TextStream {
    let settle!: { resolve: (r: GenerateResult) => void; reject: (e: unknown) => void };
    const result = new Promise<GenerateResult>((resolve, reject) => (settle = { resolve, reject }));
    result.catch(() => undefined); // a caller that only iterates must not see an unhandled rejection
    let settled = false;
    const self = this;
    async function* pieces(): AsyncGenerator<string, void, undefined> {
      const it = self.events([{ prompt, ...splitMedia(media) }], opts);
      let done = false;
      try {
        for (;;) {
          const r = await it.next();
          if (r.done) {
            done = true;
            settled = true;
            settle.resolve(rowResult(r.value.out, 0, r.value.promptTokens[0]!));
            return;
          }
          if (r.value.text) yield r.value.text;
        }
      } catch (e) {
        done = true;
        settled = true;
        settle.reject(e);
        throw e;
      } finally {
        // the caller stopped iterating: close the generation (frees its KV cache and inputs)
        if (!done) await it.return(undefined as never);
        if (!settled) settle.reject(new VlmkitError('E_ABORTED', 'the stream was closed before generation finished'));
      }
    }
    const gen = pieces();
    return { [Symbol.asyncIterator]: () => gen, result };
  }

  chat(opts: { system?: string } = {}): ChatSession {
    return new Chat(this, opts.system);
  }

  dispose(): void {
    this.model.dispose();
  }
}

class Chat implements ChatSession {
  messages: readonly ChatMessage[] = [];
  images: readonly ImageInput[] = [];
  videos: readonly VideoInput[] = [];
  private readonly cache = new PromptCache();
  /** the image options the cached turns were encoded with: other options make other pixels for the same tokens */
  private imageOptions = '';
  private busy = false;

  constructor(private readonly vlm: Vlm, private readonly system?: string) {
    this.reset();
  }

  send(text: string, media?: MediaInput, opts: VlmGenerateOptions = {}): TextStream {
    if (this.busy) throw new VlmkitError('E_BUSY', 'this chat is still answering; finish (or close) that stream before sending the next message');
    this.busy = true;
    const { images, videos } = splitMedia(media);
    const msgs = [...this.messages, userMessage(text, images.length, videos.length)];
    const imgs = [...this.images, ...images];
    const vids = [...this.videos, ...videos];
    // other sampling options make other frames for the same earlier turns
    const imageOptions = JSON.stringify([opts.doImageSplitting, opts.longestEdge, opts.fps, opts.maxFrames]);
    if (imageOptions !== this.imageOptions) this.cache.reset();
    this.imageOptions = imageOptions;
    const inner = this.vlm.stream(msgs, { images: imgs, videos: vids }, { ...opts, promptCache: this.cache });
    let settle!: { resolve: (r: GenerateResult) => void; reject: (e: unknown) => void };
    const result = new Promise<GenerateResult>((resolve, reject) => (settle = { resolve, reject }));
    result.catch(() => undefined);
    const self = this;
    // the answer joins the conversation before the iteration ends, so a next send() sees it
    async function* pieces(): AsyncGenerator<string, void, undefined> {
      try {
        yield* inner;
        const r = await inner.result;
        self.messages = [...msgs, { role: 'assistant', content: [{ type: 'text', text: r.text.trim() }] }];
        self.images = imgs;
        self.videos = vids;
        settle.resolve(r);
      } catch (e) {
        settle.reject(e);
        throw e;
      } finally {
        self.busy = false;
        settle.reject(new VlmkitError('E_ABORTED', 'the stream was closed before the answer finished'));
      }
    }
    const gen = pieces();
    return { [Symbol.asyncIterator]: () => gen, result };
  }

  reset(): void {
    this.messages = this.system ? [{ role: 'system', content: [{ type: 'text', text: this.system }] }] : [];
    this.images = [];
    this.videos = [];
    this.cache.reset();
  }

  dispose(): void {
    this.cache.dispose();
  }
}

/** A model directory opened by inspectModel: loadVlm / loadModelProcessor / describeModel reuse what it read. */
export interface ModelInfo {
  readonly dir: string;
  readonly family: ModelFamily;
  readonly config: ModelConfig;
  /** the open directory (each of its files is read once, whoever asks) */
  readonly source: ModelDir;
}

/** What a model directory is, from config.json alone: a missing folder or an unsupported model fails here. */
export function inspectModel(dir: string | ModelInfo): ModelInfo {
  if (typeof dir !== 'string') return dir;
  const md = ModelDir.of(expandHome(dir));
  return { dir: md.dir, ...readModelConfig(md), source: md };
}

/**
 * The folder of the built-in model (vlmkit-shapes, a small SmolVLM-architecture model trained by vlmkit on its own
 * shapes scenes), shipped in the package at models/vlmkit-shapes. This file is src/api.ts or dist/api.js: either
 * way the package root is one folder up.
 */
export const BUILTIN_MODEL_DIR = fileURLToPath(new URL('../models/vlmkit-shapes', import.meta.url));

/** The built-in model's folder, or a one-line error when the install lacks it (`dir` is for tests). */
export function builtinModelDir(dir: string = BUILTIN_MODEL_DIR): string {
  if (!existsSync(join(dir, 'config.json')))
    throw new VlmkitError('E_MODEL_DIR', `the built-in model is missing (${dir} has no config.json): this vlmkit install is incomplete; reinstall it (npm install vlmkit), or give a model with --model DIR`);
  return dir;
}

/** The processor of a model directory (tokenizer, chat template, image processor), without its weights. */
export function loadModelProcessor(dir: string | ModelInfo, opts: ProcessorOptions = {}): Processor {
  return loadProcessor(inspectModel(dir).source, opts);
}

/** What a checkpoint is, from its files alone (no weights are read): `json` for machines, `lines` for people. */
export function describeModel(dir: string | ModelInfo, opts: DescribeOptions): ModelDescription {
  return describeModelDir(inspectModel(dir).source, opts);
}

/**
 * Loads a model directory (the family from config.json's model_type): config, tokenizer, chat template, image
 * processor, generation settings, weights. Each file of the directory is read once.
 */
export async function loadVlm(from: string | ModelInfo, opts: LoadVlmOptions = {}): Promise<Vlm> {
  const { dir, family, config, source: md } = inspectModel(from); // a missing dir / unsupported model_type fails first
  const processor = loadProcessor(md, {
    alpha: opts.alpha,
    doImageSplitting: opts.doImageSplitting,
    longestEdge: opts.longestEdge,
    maxImagePixels: opts.maxImagePixels,
    maxLength: contextLength(family, config),
  });
  const gen = loadGenerationConfig(md);
  const model = loadModelWeights(md, { dtype: opts.dtype, quant: opts.quant });
  return new VlmImpl(dir, family, config, model, processor, gen);
}
