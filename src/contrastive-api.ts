// The library API of the contrastive models (CLIP, SigLIP): zero-shot classification and embeddings.
//
//   const clip = loadContrastive('clip-vit-base-patch32');
//   const [r] = await clip.classify(['cat.jpg'], ['a cat', 'a dog'], { template: 'a photo of {}' });
//   // r.scores: [{ label: 'a cat', score: 0.97 }, { label: 'a dog', score: 0.03 }] (best first)
//   const vecs = await clip.embedImages(['cat.jpg']); // unit-length Float32Arrays
//   const { hits } = await searchFolder(clip, 'a red car', 'photos/'); // [{ path, score }], best first (search/)
import { type Tensor, noGrad, sigmoid, softmax, tensor } from './engine/index.js';
import { VlmkitError } from './errors.js';
import { ModelDir } from './io/model-dir.js';
import { expandHome } from './io/paths.js';
import {
  type ContrastiveFamily, type ContrastiveModel, type ContrastiveProcessor, type ImageInput, loadContrastiveModel,
} from './models/index.js';
import { type AlphaMode, type RgbImage, decodeImage, readImageFile } from './processing/decode.js';

export { SearchIndex, type IndexedFile, type ModelIdentity, type SearchHit } from './search/index-file.js';
export { DEFAULT_INDEX_NAME, listImages, searchFolder, updateIndex, type SearchOptions, type UpdateIndexOptions, type UpdateStats } from './search/folder.js';
export { modelIdentity } from './search/model-id.js';
export { topK, type Hit } from './search/topk.js';

export interface LoadContrastiveOptions {
  /** 'f32': every weight in f32. Default: weights stay in their stored dtype. */
  dtype?: 'f32';
  /** how transparent images become RGB: 'drop' (PIL convert("RGB"), as transformers; default) or 'white' */
  alpha?: AlphaMode;
  /** refuse images whose header declares more pixels, before decoding (default PIL's limit) */
  maxImagePixels?: number;
}

export interface ClassifyOptions {
  /** each label goes through it, "{}" marking where (e.g. "a photo of {}"); default the label itself */
  template?: string;
  /** images encoded per forward (default 16) */
  batchSize?: number;
}

export interface LabelScore {
  label: string;
  /**
   * CLIP: softmax over the labels of logits_per_image (they sum to 1); SigLIP: sigmoid of each logit on its own
   * (transformers' zero-shot pipeline does the same per family)
   */
  score: number;
  logit: number;
}

export interface ClassifyResult {
  /** the image as given (a path) or its index */
  image: string;
  /** every label, best first */
  scores: LabelScore[];
}

export interface ContrastiveHandle {
  readonly dir: string;
  readonly family: ContrastiveFamily;
  readonly model: ContrastiveModel;
  readonly processor: ContrastiveProcessor;
  /** the embedding width */
  readonly dim: number;
  /** Zero-shot classification of each image over the labels. */
  classify(images: readonly ImageInput[], labels: readonly string[], o?: ClassifyOptions): Promise<ClassifyResult[]>;
  /** L2-normalised image embeddings, one per image. */
  embedImages(images: readonly ImageInput[], o?: { batchSize?: number }): Promise<Float32Array[]>;
  /** L2-normalised text embeddings, one per text. */
  embedTexts(texts: readonly string[], o?: { batchSize?: number }): Float32Array[];
  dispose(): void;
}

/** The labels through the template: "{}" replaced by the label (every occurrence), as the pipeline's format(). */
export function applyTemplate(labels: readonly string[], template?: string): string[] {
  if (template === undefined) return [...labels];
  if (!template.includes('{}')) throw new VlmkitError('E_ARGS', `the template ${JSON.stringify(template)} has no "{}" where the label goes; e.g. "a photo of {}"`);
  return labels.map((l) => template.split('{}').join(l));
}

/** Labels cleaned up: trimmed, none empty, at least one, no duplicates (their scores could not be told apart). */
export function checkLabels(labels: readonly string[]): string[] {
  const out = labels.map((l) => l.trim());
  if (out.length === 0 || out.every((l) => l === '')) throw new VlmkitError('E_ARGS', 'the label list is empty: give at least one label, e.g. --labels "a cat,a dog"');
  const empty = out.findIndex((l) => l === '');
  if (empty >= 0) throw new VlmkitError('E_ARGS', `label ${empty + 1} is empty (two commas in a row, or a trailing comma?): give every label some text`);
  const seen = new Set<string>();
  for (const l of out) {
    if (seen.has(l)) throw new VlmkitError('E_ARGS', `the label ${JSON.stringify(l)} is given twice: give each label once`);
    seen.add(l);
  }
  return out;
}

function positiveInt(v: number | undefined, def: number, what: string): number {
  if (v === undefined) return def;
  if (!Number.isInteger(v) || v < 1) throw new VlmkitError('E_ARGS', `${what} must be an integer >= 1, got ${v}`);
  return v;
}

function rows(t: Tensor): Float32Array[] {
  const [n, d] = t.shape;
  const flat = t.toFloat32Array();
  return Array.from({ length: n! }, (_, i) => flat.slice(i * d!, (i + 1) * d!));
}

class ContrastiveImpl implements ContrastiveHandle {
  constructor(readonly dir: string, readonly family: ContrastiveFamily, readonly model: ContrastiveModel, readonly processor: ContrastiveProcessor, private readonly o: LoadContrastiveOptions) {}

  get dim(): number {
    return this.model.embedDim;
  }

  private async decode(images: readonly ImageInput[]): Promise<RgbImage[]> {
    const out: RgbImage[] = [];
    for (let i = 0; i < images.length; i++) {
      const im = images[i]!;
      if (typeof im === 'string') out.push(await decodeImage(await readImageFile(expandHome(im)), im, { alpha: this.o.alpha, maxImagePixels: this.o.maxImagePixels }));
      else if (im instanceof Uint8Array) out.push(await decodeImage(im, `image ${i + 1}`, { alpha: this.o.alpha, maxImagePixels: this.o.maxImagePixels }));
      else if (im && typeof im === 'object' && im.data instanceof Uint8Array && im.data.length === im.width * im.height * 3) out.push(im);
      else throw new VlmkitError('E_IMAGE', `image ${i + 1} is neither a path, bytes nor an RGB image {width, height, data}; pass a file path`);
    }
    return out;
  }

  /** Image embeddings [N, E] of decoded images (no graph). */
  private imageTensor(decoded: readonly RgbImage[]): Tensor {
    const pv = this.processor.pixelValues(decoded);
    return noGrad(() => {
      const px = tensor(pv.data, pv.shape, { dtype: 'f32' });
      try {
        return this.model.imageEmbeds(px);
      } finally {
        px.dispose();
      }
    });
  }

  /** Text embeddings [B, E] (no graph), the texts padded by the family's rule. */
  private textTensor(texts: readonly string[]): Tensor {
    const enc = this.processor.encodeTexts(texts);
    const B = enc.ids.length, T = enc.ids[0]!.length;
    return noGrad(() => {
      const ids = tensor(enc.ids.flat(), [B, T], { dtype: 'i32' });
      const mask = tensor(enc.mask.flat(), [B, T], { dtype: 'i32' });
      try {
        return this.model.textEmbeds(ids, mask);
      } finally {
        ids.dispose();
        mask.dispose();
      }
    });
  }

  async embedImages(images: readonly ImageInput[], o: { batchSize?: number } = {}): Promise<Float32Array[]> {
    if (images.length === 0) throw new VlmkitError('E_ARGS', 'no images to embed: give at least one image');
    const batch = positiveInt(o.batchSize, 16, 'batchSize');
    const out: Float32Array[] = [];
    // decoded and encoded a batch at a time, so a long list never holds every image at once
    for (let i = 0; i < images.length; i += batch) {
      const e = this.imageTensor(await this.decode(images.slice(i, i + batch)));
      out.push(...rows(e));
      e.dispose();
    }
    return out;
  }

  embedTexts(texts: readonly string[], o: { batchSize?: number } = {}): Float32Array[] {
    if (texts.length === 0) throw new VlmkitError('E_ARGS', 'no texts to embed: give at least one text');
    const batch = positiveInt(o.batchSize, 64, 'batchSize');
    const out: Float32Array[] = [];
    for (let i = 0; i < texts.length; i += batch) {
      const e = this.textTensor(texts.slice(i, i + batch));
      out.push(...rows(e));
      e.dispose();
    }
    return out;
  }

  async classify(images: readonly ImageInput[], labels: readonly string[], o: ClassifyOptions = {}): Promise<ClassifyResult[]> {
    const clean = checkLabels(labels);
    if (images.length === 0) throw new VlmkitError('E_ARGS', 'no images to classify: give at least one image');
    const batch = positiveInt(o.batchSize, 16, 'batchSize');
    // the labels once, every image batch against them
    const txt = this.textTensor(applyTemplate(clean, o.template));
    const out: ClassifyResult[] = [];
    try {
      for (let i = 0; i < images.length; i += batch) {
        const part = images.slice(i, i + batch);
        const img = this.imageTensor(await this.decode(part));
        noGrad(() => {
          const logits = this.model.logitsPerImage(img, txt);
          const probs = this.model.scoring === 'softmax' ? softmax(logits, -1) : sigmoid(logits);
          const L = clean.length, lf = logits.toFloat32Array(), pf = probs.toFloat32Array();
          part.forEach((im, j) => {
            const scores = clean.map((label, k) => ({ label, score: pf[j * L + k]!, logit: lf[j * L + k]! }));
            scores.sort((x, y) => y.score - x.score);
            out.push({ image: typeof im === 'string' ? im : `image ${i + j + 1}`, scores });
          });
          for (const t of [img, logits, probs]) t.dispose();
        });
      }
    } finally {
      txt.dispose();
    }
    return out;
  }

  dispose(): void {
    this.model.dispose();
  }
}

/** Loads a CLIP or SigLIP directory (config.json's model_type picks the family). */
export function loadContrastive(dir: string, o: LoadContrastiveOptions = {}): ContrastiveHandle {
  const md = ModelDir.of(expandHome(dir));
  const { family, model, processor } = loadContrastiveModel(md, { dtype: o.dtype });
  return new ContrastiveImpl(md.dir, family, model, processor, o);
}
