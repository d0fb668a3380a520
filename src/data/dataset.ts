// Writes a generated dataset: images/<split>-NNNNNN.png and one JSONL file per split, rows in TRL's
// conversational form (what src/train/data.ts reads), plus dataset.json describing the run. The whole folder is
// built beside the target and renamed into place at the end, so a killed run leaves no half-written dataset.
//
// Image i of split s draws from its own stream mixSeed(seed, s, i): the splits are disjoint streams, and the
// first images of a split do not depend on how many are generated.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { VlmkitError } from '../errors.js';
import { writeDirAtomic } from '../io/safetensors-write.js';
import type { Canvas } from './raster.js';
import { mixSeed, Rng } from './rng.js';
import { questionFactor, type Generator, type QA, type QuestionRepeat, type QuestionWeights } from './types.js';

export const SPLITS = ['train', 'validation', 'test'] as const;
export type SplitName = (typeof SPLITS)[number];

export interface DatasetOptions {
  /** images in all splits together */
  n: number;
  seed: number;
  /** image side in pixels */
  size: number;
  /** questions per image (each a JSONL row) */
  questions: number;
  /**
   * The train split's questions of one image as one multi-turn conversation row instead of a row each: the image
   * is encoded once per row, so training costs about one vision pass per image instead of one per question.
   * Validation and test keep one question per row (what `vlmkit eval` scores).
   */
  conversation?: boolean;
  /** a factor per category on how often it is asked (vlmkit data --weights grounding=3,size=2); all splits */
  weights?: QuestionWeights;
  /** how many questions of a category one image may get (vlmkit data --repeat grounding=3; default 1); all splits */
  repeat?: QuestionRepeat;
  /** fractions of n for train, validation, test (sum 1) */
  split: readonly [number, number, number];
  /** called after each image */
  progress?: (done: number, total: number) => void;
}

export interface SplitSummary {
  images: number;
  rows: number;
  file: string;
  /** sha256 of the images' RGB pixels in order: reproducible even where PNG compression differs */
  pixels_sha256: string;
  /** sha256 of the JSONL file */
  jsonl_sha256: string;
}

export interface DatasetSummary {
  generator: string;
  seed: number;
  size: number;
  questions_per_image: number;
  /** the train split's rows are one conversation per image */
  conversation: boolean;
  /** the --weights given, when any */
  question_weights?: QuestionWeights;
  /** the --repeat given, when any */
  question_repeat?: QuestionRepeat;
  splits: Record<SplitName, SplitSummary>;
  categories: Record<string, number>;
}

/** The JSONL row for one question. */
export function rowFor(qa: QA, image: string): Record<string, unknown> {
  const row: Record<string, unknown> = {
    messages: [
      { role: 'user', content: [{ type: 'image' }, { type: 'text', text: qa.question }] },
      { role: 'assistant', content: [{ type: 'text', text: qa.answer }] },
    ],
    images: [image],
    category: qa.category,
    answer: qa.answer,
  };
  if (qa.box) row.box = qa.box;
  return row;
}

/** One row holding all of an image's questions as consecutive turns (the image in the first user turn). */
export function conversationRowFor(qas: readonly QA[], image: string): Record<string, unknown> {
  const messages = qas.flatMap((qa, i) => [
    { role: 'user', content: [...(i === 0 ? [{ type: 'image' }] : []), { type: 'text', text: qa.question }] },
    { role: 'assistant', content: [{ type: 'text', text: qa.answer }] },
  ]);
  return { messages, images: [image], category: 'conversation', categories: qas.map((q) => q.category), answers: qas.map((q) => q.answer) };
}

/** Image counts per split: validation and test get floor(n * fraction), train the rest. */
export function splitCounts(n: number, split: readonly [number, number, number]): [number, number, number] {
  const v = Math.floor(n * split[1]);
  const t = Math.floor(n * split[2]);
  return [n - v - t, v, t];
}

export function encodePng(canvas: Canvas): Buffer {
  // the sync writer only reads width, height and data: a plain object, because each `new PNG` stays reachable
  // (~100 KB an image, 1 GB over 10k images)
  const image = { width: canvas.width, height: canvas.height, data: canvas.rgba() } as unknown as PNG;
  return PNG.sync.write(image, { colorType: 2 });
}

/** The random stream image `index` of `split` is drawn from (a tool that regenerates a scene starts from it). */
export function imageRng(seed: number, split: SplitName, index: number): Rng {
  return new Rng(mixSeed(seed, SPLITS.indexOf(split), index));
}

/** Generates image `index` of `split` (what the dataset writer writes, for tests and tools). */
export function generateOne(gen: Generator, o: Pick<DatasetOptions, 'seed' | 'size' | 'questions' | 'weights' | 'repeat'>, split: SplitName, index: number) {
  return gen.generate(imageRng(o.seed, split, index), o.size, o.questions, { weights: o.weights, repeat: o.repeat });
}

export function checkDatasetOptions(gen: Generator, o: DatasetOptions): void {
  if (!Number.isInteger(o.n) || o.n < 1) throw new VlmkitError('E_ARGS', `--n takes a whole number of images >= 1, got ${o.n}`);
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > Number.MAX_SAFE_INTEGER) throw new VlmkitError('E_ARGS', `--seed takes a whole number >= 0, got ${o.seed}`);
  if (!Number.isInteger(o.size) || o.size < gen.minSize || o.size > gen.maxSize)
    throw new VlmkitError('E_ARGS', `--size for ${gen.name} takes ${gen.minSize} to ${gen.maxSize} pixels, got ${o.size}`);
  for (const [category, r] of Object.entries(o.repeat ?? {})) {
    if (!gen.categories.includes(category))
      throw new VlmkitError('E_ARGS', `--repeat: ${gen.name} has no question type ${JSON.stringify(category)}; its types are ${gen.categories.join(', ')}`);
    if (!(Number.isInteger(r) && r >= 1 && r <= 10)) throw new VlmkitError('E_ARGS', `--repeat: ${category} takes a whole number of questions a picture, 1 to 10, got ${r}`);
  }
  // an opt-in type counts only when --weights names it (so --questions' limit is what it was before it existed)
  const most = gen.categories.reduce((n, c) => n + (gen.optIn?.includes(c) && o.weights?.[c] === undefined ? 0 : (o.repeat?.[c] ?? 1)), 0);
  if (!Number.isInteger(o.questions) || o.questions < 1 || o.questions > most)
    throw new VlmkitError('E_ARGS', `--questions takes 1 to ${most} (one per question type${o.repeat ? ', --repeat times' : ''}), got ${o.questions}`);
  const sum = o.split.reduce((a, b) => a + b, 0);
  if (o.split.some((f) => !(f >= 0)) || Math.abs(sum - 1) > 1e-9)
    throw new VlmkitError('E_ARGS', `--split takes three fractions for train,validation,test that sum to 1, e.g. 0.8,0.1,0.1; got ${o.split.join(',')}`);
  for (const [category, w] of Object.entries(o.weights ?? {})) {
    if (!gen.categories.includes(category))
      throw new VlmkitError('E_ARGS', `--weights: ${gen.name} has no question type ${JSON.stringify(category)}; its types are ${gen.categories.join(', ')}`);
    if (!(Number.isFinite(w) && w >= 0)) throw new VlmkitError('E_ARGS', `--weights: ${category} takes a factor >= 0 (0: never asked), got ${w}`);
  }
  if (o.weights && gen.categories.every((c) => questionFactor(c, o.weights, gen.optIn) === 0)) throw new VlmkitError('E_ARGS', `--weights: every question type of ${gen.name} is at 0; leave at least one above 0`);
}

/**
 * Generates the dataset into `out`. An existing non-empty `out` is replaced only with `force` (it is swapped out
 * at the very end, so it survives a failed run).
 */
export function writeDataset(gen: Generator, out: string, o: DatasetOptions, force = false): DatasetSummary {
  checkDatasetOptions(gen, o);
  if (existsSync(out) && readdirSync(out).length > 0 && !force)
    throw new VlmkitError('E_ARGS', `--out ${out} exists and is not empty; choose a new folder or pass --force to replace it`);
  const counts = splitCounts(o.n, o.split);
  const summary: DatasetSummary = {
    generator: gen.name,
    seed: o.seed,
    size: o.size,
    questions_per_image: o.questions,
    conversation: !!o.conversation,
    ...(o.weights && Object.keys(o.weights).length ? { question_weights: o.weights } : {}),
    ...(o.repeat && Object.keys(o.repeat).length ? { question_repeat: o.repeat } : {}),
    splits: {} as Record<SplitName, SplitSummary>,
    categories: {},
  };
  let done = 0;
  writeDirAtomic(out, (tmp) => {
    mkdirSync(join(tmp, 'images'));
    SPLITS.forEach((split, s) => {
      const file = `${split}.jsonl`;
      const fd = openSync(join(tmp, file), 'w');
      const pixels = createHash('sha256');
      const jsonl = createHash('sha256');
      let rows = 0;
      try {
        for (let i = 0; i < counts[s]!; i++) {
          const { canvas, qas } = generateOne(gen, o, split, i);
          const image = `images/${split}-${String(i).padStart(6, '0')}.png`;
          writeFileSync(join(tmp, image), encodePng(canvas));
          pixels.update(canvas.data);
          const lines = gen.pairs ? qas.map((qa) => ({ image, text: qa.answer })) : o.conversation && split === 'train' ? [conversationRowFor(qas, image)] : qas.map((qa) => rowFor(qa, image));
          for (const row of lines) {
            const line = JSON.stringify(row) + '\n';
            writeSync(fd, line);
            jsonl.update(line);
            rows++;
          }
          for (const qa of qas) summary.categories[qa.category] = (summary.categories[qa.category] ?? 0) + 1;
          o.progress?.(++done, o.n);
        }
      } finally {
        closeSync(fd);
      }
      summary.splits[split] = { images: counts[s]!, rows, file, pixels_sha256: pixels.digest('hex'), jsonl_sha256: jsonl.digest('hex') };
    });
    writeFileSync(join(tmp, 'dataset.json'), JSON.stringify(summary, null, 2) + '\n');
  });
  return summary;
}
