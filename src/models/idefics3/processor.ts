// The Idefics3 / SmolVLM processor: chat messages (or a rendered prompt) + images -> the model's inputs
// {inputIds, attentionMask, pixelValues, pixelAttentionMask} as engine tensors, for one sample or a padded batch.
// Images go through the image processor first (its split grid decides how each <image> placeholder expands),
// then the prompt is rendered, expanded and tokenized. Left padding for generation, right padding for training.
import { VlmkitError } from '../../errors.js';
import { ModelDir } from '../../io/model-dir.js';
import { tensor } from '../../engine/index.js';
import type { Backend } from '../../engine/backend/backend.js';
import type { Tensor } from '../../engine/tensor.js';
import { countMedia, type ChatMessage, type ContentPart } from '../../processing/chat-template.js';
import { decodeImage, predictImageSize, readImageFile, type AlphaMode, type RgbImage } from '../../processing/decode.js';
import {
  loadImageProcessorConfig,
  longestEdgeSize,
  processImages,
  visionEncoderSize,
  type ImageProcessorConfig,
} from './image.js';
import { PromptBuilder, countToken, padBatch, type BuiltPrompt, type ImageGrid, type PaddingSide, type VideoPromptInfo } from './prompt.js';
import { IMAGE_TOKEN, VIDEO_TOKEN } from '../../processing/tokenizer.js';
import {
  DEFAULT_VIDEO_SAMPLING, framesAsImages, framesAsImagesText, loadVideoProcessorConfig, mediaOrder, videoFrames,
  type VideoInput, type VideoOptions, type VideoProcessorConfig,
} from './video.js';

/** An image as a file path, the file's bytes, or decoded RGB. */
export type ImageInput = string | Uint8Array | RgbImage;

/** One sample: a conversation (or an already rendered prompt) and its images, in placeholder order. */
export interface ProcessorSample {
  messages?: readonly ChatMessage[];
  /** a rendered prompt with `<image>` placeholders (instead of messages) */
  text?: string;
  images?: readonly ImageInput[];
  /** one per {type:'video'} part (or `<video>` marker), in order: a file path or frames with timestamps */
  videos?: readonly VideoInput[];
  /** per-sample override of EncodeOptions.addGenerationPrompt (messages only) */
  addGenerationPrompt?: boolean;
}

/** Per-call overrides of the checkpoint's image processor settings (transformers: processor(..., size=...)). */
export interface ImageOptions {
  /** override the checkpoint's do_image_splitting */
  doImageSplitting?: boolean;
  /**
   * override size.longest_edge: images are resized to this long edge (then up to whole tiles) before splitting,
   * e.g. 1024 for 2x2 tiles of 512 instead of SmolVLM's 4x4 at 2048 (fewer tokens and a faster prompt, less detail)
   */
  longestEdge?: number;
  /**
   * refuse an image whose header declares more pixels than this, before decoding it (default PIL's limit,
   * 178,956,970); a server taking images from others would set it lower
   */
  maxImagePixels?: number;
}

export interface ProcessorOptions extends ImageOptions {
  /** how transparency becomes RGB: 'drop' (transformers 5.x, default) or 'white' (4.x, as SmolVLM was trained) */
  alpha?: AlphaMode;
  /** the model's context length: longer prompts are an E_CONTEXT error (default: no check) */
  maxLength?: number;
  /** backend of the returned tensors (default: the engine's default backend) */
  backend?: Backend;
}

export interface EncodeOptions extends ImageOptions, VideoOptions {
  /** 'left' (generation, default) or 'right' (training) */
  padding?: PaddingSide;
  /** default true: append the assistant prefix */
  addGenerationPrompt?: boolean;
}

/** The model inputs of a batch plus what they were made from. Call dispose() when done with the tensors. */
export interface EncodedBatch {
  /** [B, T] i32 */
  inputIds: Tensor;
  /** [B, T] i32, 1 = token */
  attentionMask: Tensor;
  /** [B, N, 3, S, S] f32 (absent when no sample has an image) */
  pixelValues?: Tensor;
  /** [B, N, S, S] u8 */
  pixelAttentionMask?: Tensor;
  /** per sample: the rendered prompt, the expanded text and its unpadded ids */
  prompts: BuiltPrompt[];
  /** per sample, per image: split grid */
  grids: ImageGrid[][];
  /** per sample: real tiles */
  tileCounts: number[];
  /** [B][T] padded ids and mask as plain numbers */
  ids: number[][];
  mask: number[][];
  batchSize: number;
  seqLen: number;
  padding: PaddingSide;
  dispose(): void;
}

/** cfg with the given overrides (unset ones keep the checkpoint's value). */
export function withImageOptions(cfg: ImageProcessorConfig, opts: ImageOptions): ImageProcessorConfig {
  const { doImageSplitting: split, longestEdge: edge } = opts;
  if (edge !== undefined && !(Number.isInteger(edge) && edge >= 1))
    throw new VlmkitError('E_OPTION', `longestEdge must be a whole number of pixels >= 1 (e.g. 1024), got ${edge}`);
  if (split === undefined && edge === undefined) return cfg;
  return { ...cfg, ...(split !== undefined && { doImageSplitting: split }), ...(edge !== undefined && { longestEdge: edge }) };
}

function mediaError(message: string): VlmkitError {
  return new VlmkitError('E_PROMPT', message);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * A user question and its media as a SmolVLM conversation: the videos, the images, then the text (SmolVLM's own
 * examples do this). `<image>` markers written in the question place the images there instead.
 */
export function userMessage(question: string, imageCount: number, videoCount = 0): ChatMessage {
  const content: ContentPart[] = [];
  for (let i = 0; i < videoCount; i++) content.push({ type: 'video' });
  if (question.includes(IMAGE_TOKEN)) {
    const pieces = question.split(IMAGE_TOKEN);
    pieces.forEach((p, i) => {
      if (i > 0) content.push({ type: 'image' });
      if (p) content.push({ type: 'text', text: p });
    });
  } else {
    for (let i = 0; i < imageCount; i++) content.push({ type: 'image' });
    content.push({ type: 'text', text: question });
  }
  return { role: 'user', content };
}

/** An image input after its file is read: encoded bytes (with a name for errors) or an already decoded image. */
interface ReadImage {
  bytes?: Uint8Array;
  name?: string;
  image?: RgbImage;
}

/** A sample once its videos are frames: SmolVLM2 keeps the video placeholders (their prompt info and squares). */
export interface FramedSample extends ProcessorSample {
  videoPrompts?: VideoPromptInfo[];
  videoSquares?: RgbImage[][];
}

function isRgb(x: ImageInput): x is RgbImage {
  return typeof x === 'object' && !(x instanceof Uint8Array) && typeof (x as RgbImage).width === 'number';
}

export class Processor {
  readonly dir: string;
  readonly prompt: PromptBuilder;
  readonly imageConfig: ImageProcessorConfig;
  readonly options: ProcessorOptions;

  constructor(dir: string, prompt: PromptBuilder, imageConfig: ImageProcessorConfig, options: ProcessorOptions = {}) {
    this.dir = dir;
    this.prompt = prompt;
    this.imageConfig = imageConfig;
    this.options = options;
  }

  /** Tokenizer, chat template, prompt and image processor configs of a checkpoint directory. */
  static fromDir(dir: string | ModelDir, options: ProcessorOptions = {}): Processor {
    const md = ModelDir.of(dir);
    return new Processor(md.dir, PromptBuilder.fromDir(md), loadImageProcessorConfig(md), options);
  }

  get tokenizer() {
    return this.prompt.tokenizer;
  }

  private videoCfg: VideoProcessorConfig | null | undefined;

  /**
   * The checkpoint's video processor: SmolVLM2 (model_type smolvlm) has its own video prompt and frame squares;
   * null for Idefics3 / SmolVLM v1, whose videos become images after FRAMES_INTRO.
   */
  get videoConfig(): VideoProcessorConfig | null {
    if (this.videoCfg === undefined) this.videoCfg = this.prompt.config.modelType === 'smolvlm' ? loadVideoProcessorConfig(this.dir) : null;
    return this.videoCfg;
  }

  /**
   * Samples with videos -> samples with frames. Each video is decoded (or checked) in turn, so only one ffmpeg
   * runs and each frame is shrunk as it arrives. v1 checkpoints: the frames become images; SmolVLM2: the video
   * placeholders stay and the frames' squares and prompt info come along.
   */
  async withFrames(samples: readonly ProcessorSample[], opts: VideoOptions = {}): Promise<FramedSample[]> {
    const where = (i: number) => (samples.length > 1 ? `batch sample ${i}: ` : '');
    samples.forEach((s, i) => checkMediaCount(s, where(i)));
    const out: FramedSample[] = [];
    for (const s of samples) {
      if (!s.videos?.length) { out.push(s); continue; }
      const vcfg = this.videoConfig;
      const got = [];
      for (let v = 0; v < s.videos.length; v++) got.push(await videoFrames(s.videos[v]!, v, vcfg?.sampling ?? DEFAULT_VIDEO_SAMPLING, opts, vcfg?.image));
      if (vcfg) {
        out.push({ ...s, videos: undefined, videoPrompts: got.map((g) => ({ timestamps: g.timestamps, duration: g.duration })), videoSquares: got.map((g) => g.frames) });
      } else {
        const images = s.images ?? [];
        const frames = got.map((g) => g.frames as ImageInput[]);
        const lowered = s.messages !== undefined ? framesAsImages(s.messages, images, frames) : { ...framesAsImagesText(s.text ?? '', images, frames), messages: undefined };
        out.push({ ...s, ...lowered, videos: undefined });
      }
    }
    return out;
  }

  /** image tokens per tile */
  get imageSeqLen(): number {
    return this.prompt.config.imageSeqLen;
  }

  /** The image processor settings a call applies: its options over the processor's over the checkpoint's. */
  imageConfigFor(opts: ImageOptions = {}): ImageProcessorConfig {
    return withImageOptions(this.imageConfig, {
      doImageSplitting: opts.doImageSplitting ?? this.options.doImageSplitting,
      longestEdge: opts.longestEdge ?? this.options.longestEdge,
    });
  }

  /** Decodes images given as paths or bytes (E_IMAGE names the file on failure). */
  async loadImages(images: readonly ImageInput[], opts: ImageOptions = {}): Promise<RgbImage[]> {
    return this.decodeImages(await this.readImages(images), opts);
  }

  /** Reads image files, checks decoded images; bytes and decoded images pass as they are. */
  private readImages(images: readonly ImageInput[]): Promise<ReadImage[]> {
    return Promise.all(
      images.map(async (im, i): Promise<ReadImage> => {
        if (typeof im === 'string') return { bytes: await readImageFile(im), name: im };
        if (im instanceof Uint8Array) return { bytes: im, name: `image ${i}` };
        if (isRgb(im)) {
          if (im.data.length !== im.width * im.height * 3) {
            throw new VlmkitError('E_IMAGE', `image ${i}: RGB data of ${im.data.length} bytes does not fit ${im.width}x${im.height}x3`);
          }
          return { image: im };
        }
        throw new VlmkitError('E_IMAGE', `image ${i} is neither a path, bytes nor {width, height, data}; pass a file path`);
      }),
    );
  }

  private decodeImages(images: readonly ReadImage[], opts: ImageOptions): Promise<RgbImage[]> {
    const alpha = this.options.alpha ?? 'drop';
    const maxImagePixels = opts.maxImagePixels ?? this.options.maxImagePixels;
    return Promise.all(images.map((r) => r.image ?? decodeImage(r.bytes!, r.name!, { alpha, maxImagePixels })));
  }

  /** One sample (a batch of one). */
  async encode(sample: ProcessorSample, opts: EncodeOptions = {}): Promise<EncodedBatch> {
    return this.encodeBatch([sample], opts);
  }

  /** Several samples, each with its own images, padded to one length (left by default). */
  async encodeBatch(given: readonly ProcessorSample[], opts: EncodeOptions = {}): Promise<EncodedBatch> {
    const samples = await this.withFrames(given, opts);
    const read = await Promise.all(samples.map((s) => this.readImages(s.images ?? [])));
    // The prompts' lengths follow from the image sizes their headers give: a batch over the context fails
    // before any image is decoded (many large images would otherwise cost seconds and GBs first).
    const sizes = read.map((list) => list.map((r) => (r.image ? [r.image.width, r.image.height] as [number, number] : predictImageSize(r.bytes!))));
    const known = sizes.every((l) => l.every((x) => x !== null));
    const early = this.options.maxLength !== undefined && known ? this.buildPrompts(samples, sizes as [number, number][][], opts) : null;
    const decoded = await Promise.all(read.map((list) => this.decodeImages(list, opts)));
    // the prompts built from the headers serve when the decoded sizes are the predicted ones (they always are for
    // the formats we read; the check keeps a wrong header from mattering)
    const same = decoded.every((l, i) => l.every((im, j) => im.width === sizes[i]![j]![0] && im.height === sizes[i]![j]![1]));
    return this.assemble(samples.map((s, i) => ({ ...s, images: decoded[i]! })), opts, early && same ? early : null);
  }

  /**
   * The prompts of a batch with images of these sizes (the split grids follow from sizes alone), checked against
   * the context: E_CONTEXT when one is longer.
   */
  private buildPrompts(samples: readonly FramedSample[], sizes: readonly (readonly [number, number])[][], opts: EncodeOptions): { prompts: BuiltPrompt[]; grids: ImageGrid[][] } {
    if (samples.length === 0) throw mediaError('nothing to encode: the batch is empty');
    const where = (i: number) => (samples.length > 1 ? `batch sample ${i}: ` : '');
    samples.forEach((s, i) => checkMediaCount(s, where(i)));
    const cfg = this.imageConfigFor(opts);
    const grids: ImageGrid[][] = sizes.map((l) => l.map(([w, h]) => imageGridForSize(w, h, cfg)));
    const prompts = samples.map((s, i) => {
      try {
        if (s.messages !== undefined && s.text !== undefined) throw mediaError('give messages or text, not both');
        const media = { images: grids[i], videos: s.videoPrompts };
        if (s.messages !== undefined) return this.prompt.build(s.messages, media, { addGenerationPrompt: s.addGenerationPrompt ?? opts.addGenerationPrompt ?? true });
        if (s.text !== undefined) return this.prompt.buildText(s.text, media);
        throw mediaError('a sample needs messages or text');
      } catch (e) {
        if (e instanceof VlmkitError && where(i)) throw new VlmkitError(e.code, where(i) + e.message);
        throw e;
      }
    });
    const max = this.options.maxLength;
    if (max !== undefined) {
      prompts.forEach((p, i) => {
        if (p.inputIds.length > max) {
          const imageTokens = p.inputIds.filter((t) => t === this.tokenizer.specialIds.image).length;
          throw new VlmkitError(
            'E_CONTEXT',
            `${where(i)}the prompt is ${p.inputIds.length} tokens (${imageTokens} of them image tokens) but the model's context is ${max}; ` +
              `shorten the prompt, pass fewer or smaller images (or fewer video frames: --max-frames), or turn image splitting off`,
          );
        }
      });
    }
    return { prompts, grids };
  }

  /**
   * The pixels of a sample whose videos are frames (withFrames) and images decoded, in prompt order, with the
   * config of each (undefined: the image processor's; video frames: their square config). For the SFT collator.
   */
  pixelsInOrder(s: FramedSample & { images?: readonly RgbImage[] }, renderedPrompt: string): { images: RgbImage[]; configs: (ImageProcessorConfig | undefined)[] } {
    return pixelsInTokenOrder(s, renderedPrompt, this.videoConfig);
  }

  /** Like encodeBatch, with images already decoded (synchronous; videos go through encodeBatch). */
  encodeDecoded(samples: readonly (ProcessorSample & { images?: readonly RgbImage[] })[], opts: EncodeOptions = {}): EncodedBatch {
    if (samples.some((x) => x.videos?.length)) throw new VlmkitError('E_VIDEO', 'encodeDecoded takes no videos (they decode asynchronously); use encodeBatch');
    return this.assemble(samples, opts, null);
  }

  /** encodeDecoded, with the prompts already built for these image sizes when `built` is given. */
  private assemble(samples: readonly (FramedSample & { images?: readonly RgbImage[] })[], opts: EncodeOptions, built: { prompts: BuiltPrompt[]; grids: ImageGrid[][] } | null): EncodedBatch {
    // prompts first, from the image sizes: a prompt over the context fails before any pixel is resized
    const { prompts, grids } = built ?? this.buildPrompts(samples, samples.map((s) => ((s.images ?? []) as readonly RgbImage[]).map((im) => [im.width, im.height] as const)), opts);
    const cfg = this.imageConfigFor(opts);
    const anyImages = samples.some((s) => (s.images?.length ?? 0) > 0 || (s.videoSquares?.length ?? 0) > 0);
    const media = samples.map((s, i) => pixelsInTokenOrder(s, prompts[i]!.prompt, this.videoConfig));
    const images = anyImages ? processImages(media.map((m) => m.images), cfg, media.map((m) => m.configs)) : null;
    const imageGrids = images?.grids.map((gs, b) => gs.filter((_, j) => media[b]!.configs[j] === undefined));
    if (images && JSON.stringify(imageGrids) !== JSON.stringify(grids)) throw new Error('vlmkit internal: image grids differ from imageGridForSize');
    const padding = opts.padding ?? 'left';
    const padded = padBatch(prompts.map((p) => p.inputIds), { side: padding, padId: this.prompt.padId() });
    const B = padded.batchSize;
    const T = padded.seqLen;
    const backend = this.options.backend;
    const made: Tensor[] = [];
    const mk = (t: Tensor) => (made.push(t), t);
    const out: EncodedBatch = {
      inputIds: mk(tensor(padded.inputIds.flat(), [B, T], { dtype: 'i32', backend })),
      attentionMask: mk(tensor(padded.attentionMask.flat(), [B, T], { dtype: 'i32', backend })),
      prompts,
      grids,
      tileCounts: images ? images.tileCounts : samples.map(() => 0),
      ids: padded.inputIds,
      mask: padded.attentionMask,
      batchSize: B,
      seqLen: T,
      padding,
      dispose: () => {
        for (const t of made) t.dispose();
      },
    };
    if (images) {
      out.pixelValues = mk(tensor(images.pixelValues, images.pixelValuesShape, { dtype: 'f32', backend }));
      out.pixelAttentionMask = mk(tensor(images.pixelAttentionMask, images.pixelAttentionMaskShape, { dtype: 'u8', backend }));
    }
    return out;
  }
}

/**
 * A sample's images and video frames in the order their blocks sit in the prompt (the model fills the image
 * tokens in that order); frames get the square, never-split config.
 */
function pixelsInTokenOrder(s: FramedSample & { images?: readonly RgbImage[] }, prompt: string, vcfg: VideoProcessorConfig | null): { images: RgbImage[]; configs: (ImageProcessorConfig | undefined)[] } {
  const images = [...((s.images ?? []) as RgbImage[])];
  if (!s.videoSquares?.length) return { images, configs: images.map(() => undefined) };
  const frameCfg = { ...vcfg!.image, doResize: false, doImageSplitting: false };
  const out: RgbImage[] = [];
  const configs: (ImageProcessorConfig | undefined)[] = [];
  let im = 0;
  let vi = 0;
  for (const kind of mediaOrder(prompt)) {
    if (kind === 'image') { out.push(images[im++]!); configs.push(undefined); }
    else for (const f of s.videoSquares[vi++] ?? []) { out.push(f); configs.push(frameCfg); }
  }
  return { images: out, configs };
}

/** Placeholders (image parts, or `<image>` in a rendered text) must match the images given, one for one; video parts the videos. */
export function checkMediaCount(s: ProcessorSample, where = ''): void {
  checkVideoCount(s, where);
  const given = s.images?.length ?? 0;
  let placeholders: number;
  let what: string;
  if (s.messages !== undefined) {
    placeholders = countMedia(s.messages).images;
    // a text part may also carry <image> markers
    for (const m of s.messages) {
      if (typeof m.content === 'string') placeholders += countToken(m.content, IMAGE_TOKEN);
      else for (const p of m.content) if (p.type === 'text') placeholders += countToken((p as { text: string }).text, IMAGE_TOKEN);
    }
    what = ' ({type:"image"} parts and <image> markers)';
  } else {
    placeholders = countToken(s.text ?? '', IMAGE_TOKEN);
    what = ` (${IMAGE_TOKEN})`;
  }
  if (placeholders !== given) {
    throw mediaError(
      `${where}the prompt has ${plural(placeholders, 'image placeholder')}${what} but ${plural(given, 'image')} ${given === 1 ? 'was' : 'were'} given; ` +
        `pass exactly one image per placeholder (add or remove images, or ${IMAGE_TOKEN} markers in the prompt)`,
    );
  }
}

function checkVideoCount(s: ProcessorSample, where: string): void {
  const given = s.videos?.length ?? (s as FramedSample).videoPrompts?.length ?? 0;
  const placeholders = s.messages !== undefined ? countMedia(s.messages).videos : countToken(s.text ?? '', VIDEO_TOKEN);
  if (placeholders !== given) {
    throw mediaError(
      `${where}the prompt has ${plural(placeholders, 'video placeholder')} (${s.messages !== undefined ? '{type:"video"} parts' : VIDEO_TOKEN}) but ${plural(given, 'video')} ${given === 1 ? 'was' : 'were'} given; ` +
        'pass exactly one video per placeholder',
    );
  }
}

/**
 * The split grid the image processor gives an image of width x height (no pixels needed): rows x cols tiles plus
 * the global image, or 0 x 0 for a single tile.
 */
export function imageGridForSize(width: number, height: number, cfg: ImageProcessorConfig): ImageGrid {
  let h = height;
  let w = width;
  if (cfg.doResize) [h, w] = longestEdgeSize(h, w, cfg.longestEdge);
  if (!cfg.doImageSplitting) return { rows: 0, cols: 0 };
  const m = cfg.maxImageSize;
  [h, w] = visionEncoderSize(h, w, m);
  if (h <= m && w <= m) return { rows: 0, cols: 0 };
  return { rows: Math.floor((h - m) / m) + 1, cols: Math.floor((w - m) / m) + 1 };
}
