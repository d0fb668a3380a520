// The contrastive objective (`vlmkit train contrastive`): rows of one image and its caption; a micro-batch's N
// images are scored against its N captions (logits_per_image [N, N]) and the loss is CLIP's symmetric softmax or
// SigLIP's sigmoid loss (contrastive-loss.ts). The other rows of the micro-batch are the negatives, so the batch
// size is part of the objective: gradient accumulation sums the losses of separate micro-batches (each with its own
// negatives), it does not make a bigger contrastive batch.
//
// Each row counts as one loss target: a micro-batch contributes (its mean loss · N) / (rows in the whole step),
// which is its mean loss when a step is one micro-batch, and the row-weighted mean over micro-batches otherwise.
import { existsSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { type Tensor, argmax, mul, noGrad, tensor } from '../engine/index.js';
import { VlmkitError } from '../errors.js';
import { type ContrastiveModel, type ContrastiveProcessor, hostInts } from '../models/index.js';
import { type ContrastiveLossName, contrastiveLoss } from './contrastive-loss.js';
import { type BadRow, bad, readJsonlRows } from './data.js';
import type { MicroBatch, Objective } from './trainer.js';

/** One (image, caption) row, tokenized. */
export interface ContrastiveExample {
  /** the image file (absolute) */
  image: string;
  text: string;
  /** token ids without padding */
  ids: number[];
  /** "file:line" for errors */
  where: string;
}

export interface ContrastiveDataOptions {
  /** skip (and count) bad rows instead of failing on the first */
  skipBadRows?: boolean;
}

export interface ContrastiveDatasetSummary {
  file: string;
  rows: number;
  used: number;
  skipped: number;
  /** distinct captions */
  captions: number;
}

/** Rows {"image": path, "text": caption} (JSONL; image paths relative to the file), tokenized at load. */
export class ContrastiveDataset {
  private constructor(readonly file: string, readonly examples: ContrastiveExample[], readonly skipped: BadRow[], readonly rows: number) {}

  get length(): number {
    return this.examples.length;
  }

  static async load(file: string, processor: ContrastiveProcessor, o: ContrastiveDataOptions = {}): Promise<ContrastiveDataset> {
    const vocab = processor.text.vocabSize, maxLength = processor.text.maxLength;
    const { examples, skipped, rows } = await readJsonlRows(file, 'image-text rows', o.skipBadRows, async (obj, line, baseDir): Promise<ContrastiveExample> => {
      if (!obj || typeof obj !== 'object' || Array.isArray(obj)) bad('must be a JSON object {"image": "path", "text": "caption"}');
      const row = obj as Record<string, unknown>;
      const image = row.image, text = row.text;
      if (typeof image !== 'string' || !image.trim()) bad('"image" must be the path of an image file');
      if (typeof text !== 'string' || !text.trim()) bad('"text" must be a non-empty caption');
      const path = isAbsolute(image as string) ? (image as string) : join(baseDir, image as string);
      if (!existsSync(path) || !statSync(path).isFile()) bad(`image ${JSON.stringify(image)} does not exist (${path})`);
      const ids = processor.tokenizer.encode(text as string);
      if (!ids.length) bad(`"text" ${JSON.stringify(text)} makes no tokens`);
      if (ids.length > maxLength) bad(`"text" is ${ids.length} tokens; the text tower takes at most ${maxLength} (text_config.max_position_embeddings)`);
      // a tokenizer from another model can still hand out ids past the embedding table: refuse them here
      const far = ids.find((t) => t < 0 || t >= vocab);
      if (far !== undefined)
        throw new VlmkitError('E_TOKENIZER', `${file}:${line}: the tokenizer gives id ${far} for ${JSON.stringify(text)} but the model's text_config.vocab_size is ${vocab}: the tokenizer does not belong to this model; use the model's own tokenizer.json`);
      return { image: path, text: text as string, ids, where: `${file}:${line}` };
    });
    return new ContrastiveDataset(file, examples, skipped, rows);
  }

  summary(): ContrastiveDatasetSummary {
    return { file: this.file, rows: this.rows, used: this.examples.length, skipped: this.skipped.length, captions: new Set(this.examples.map((e) => e.text)).size };
  }
}

export interface ContrastiveBatch extends MicroBatch {
  pixels: Tensor;
  ids: Tensor;
  mask: Tensor;
  /** the captions in row order (an image whose best text has its own caption counts as right, duplicates or not) */
  texts: string[];
}

/** The contrastive objective over a ContrastiveModel (CLIP or SigLIP), with either loss. */
export class ContrastiveObjective implements Objective<ContrastiveExample, ContrastiveBatch, ContrastiveModel> {
  private right = 0;
  private seen = 0;

  constructor(readonly processor: ContrastiveProcessor, readonly lossName: ContrastiveLossName) {}

  length(ex: ContrastiveExample): number {
    return ex.ids.length;
  }

  countTargets(): number {
    return 1;
  }

  async prepare(exs: ContrastiveExample[]): Promise<ContrastiveBatch> {
    const images = await Promise.all(exs.map(async (ex) => {
      try {
        return (await this.processor.loadImages([ex.image]))[0]!;
      } catch (e) {
        throw new VlmkitError('E_IMAGE', `${ex.where}: cannot read image ${ex.image} (${(e as Error).message}); fix or remove the row`);
      }
    }));
    const px = this.processor.pixelValues(images);
    // pad as the family was trained (CLIP: to the longest caption; SigLIP: to max_length)
    const T = this.processor.text.padding === 'max_length' ? this.processor.text.maxLength : Math.max(...exs.map((e) => e.ids.length));
    const pad = this.processor.tokenizer.padId(this.processor.text.padTokenId);
    const ids = new Int32Array(exs.length * T).fill(pad), mask = new Int32Array(exs.length * T);
    exs.forEach((e, b) => e.ids.forEach((t, i) => { ids[b * T + i] = t; mask[b * T + i] = 1; }));
    const pixels = tensor(px.data, px.shape);
    const idT = tensor(ids, [exs.length, T], { dtype: 'i32' });
    const maskT = tensor(mask, [exs.length, T], { dtype: 'i32' });
    return {
      batchSize: exs.length, numTokens: exs.reduce((a, e) => a + e.ids.length, 0), numTargets: exs.length, pixels, ids: idT, mask: maskT,
      texts: exs.map((e) => e.text),
      dispose() { pixels.dispose(); idT.dispose(); maskT.dispose(); },
    };
  }

  loss(model: ContrastiveModel, b: ContrastiveBatch, denominator: number): Tensor {
    const logits = model.logitsPerImage(model.imageEmbeds(b.pixels), model.textEmbeds(b.ids, b.mask));
    // image -> text top-1 within the batch (a duplicate of the right caption is right too)
    const best = noGrad(() => hostInts(argmax(logits, -1)));
    best.forEach((j, i) => { if (b.texts[j] === b.texts[i]) this.right++; });
    this.seen += b.batchSize;
    return mul(contrastiveLoss(this.lossName, logits), b.batchSize / denominator);
  }

  takeMetrics(): Record<string, number> | null {
    const out = this.seen ? { batch_accuracy: this.right / this.seen } : null;
    this.right = this.seen = 0;
    return out;
  }
}
