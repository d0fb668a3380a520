// What the generators produce: a picture and questions about it with short canonical answers.
import type { LabeledBox } from './loc.js';
import type { Canvas } from './raster.js';
import type { Rng } from './rng.js';

/** One question about an image. */
export interface QA {
  /** the question type, e.g. "count_kind" (the JSONL row's "category") */
  category: string;
  question: string;
  /** short and canonical, for exact-match scoring ("3", "red", "yes", "left", location tokens + label) */
  answer: string;
  /** grounding: the object's box in image pixels */
  box?: LabeledBox;
}

export interface GeneratedImage {
  canvas: Canvas;
  qas: QA[];
}

export interface Generator {
  name: string;
  defaultSize: number;
  minSize: number;
  maxSize: number;
  /** every category its questions can have */
  categories: readonly string[];
  /** the categories asked only when --weights names them (see questionFactor) */
  optIn?: readonly string[];
  /** its rows are image-text pairs {"image", "text": the answer} (contrastive training), not questions */
  pairs?: boolean;
  /**
   * One image and up to `questions` questions about it (fewer when the scene allows fewer kinds); `mix` scales
   * how often each category is asked and how many times one image may be asked it (see pickQuestions).
   */
  generate(rng: Rng, size: number, questions: number, mix?: QuestionMix): GeneratedImage;
  /** Questions about a random scene that is not drawn: text for training the tokenizer, fast. */
  text(rng: Rng, size: number, questions: number): QA[];
}

/** Picks a question template. */
export function phrase(rng: Rng, templates: readonly string[], vars: Record<string, string> = {}): string {
  return rng.pick(templates).replace(/\{(\w+)\}/g, (_, k: string) => {
    const v = vars[k];
    if (v === undefined) throw new Error(`template variable {${k}} not given`);
    return v;
  });
}

/** A factor per category on its maker's weight ({"grounding": 3}: asked as if three times as common; 0: never). */
export type QuestionWeights = Readonly<Record<string, number>>;

/**
 * How many questions of a category one image may get ({"grounding": 3}: up to three, of different objects;
 * default 1). Several questions about one picture that each need a different object found teach the model to
 * find the object named rather than a habit (the topmost one, say).
 */
export type QuestionRepeat = Readonly<Record<string, number>>;

/** What vlmkit data --weights and --repeat ask of a generator's question choice. */
export interface QuestionMix {
  weights?: QuestionWeights;
  repeat?: QuestionRepeat;
}

/** A question before pickQuestions stamps its maker's category on it. */
export type Question = Omit<QA, 'category'>;

/** A question maker: its weight, the category it asks, and the maker (null when the scene allows none). */
export type Maker = readonly [weight: number, category: string, make: () => Question | null];

/**
 * The factor on a category's weight: the one --weights gives, else 1, or 0 for an opt-in category (a type added
 * after datasets were made with the others, asked only when named, so that those datasets are made again unchanged).
 */
export function questionFactor(category: string, weights: QuestionWeights | undefined, optIn: readonly string[] = []): number {
  return weights?.[category] ?? (optIn.includes(category) ? 0 : 1);
}

/**
 * Draws up to k questions: categories are tried in a weighted random order and a maker that returns null (the
 * scene does not allow that kind of question) is skipped. `mix.weights` multiplies a category's weight; a
 * category at 0 is never asked. A category is tried `mix.repeat` times (default once: distinct categories); a
 * question already asked of this image is not asked again. Without a mix the draws are those of the plain weights,
 * so datasets made before weights existed are made again byte for byte.
 */
export function pickQuestions(rng: Rng, k: number, makers: readonly Maker[], mix: QuestionMix = {}, optIn: readonly string[] = []): QA[] {
  const factor = (m: Maker) => questionFactor(m[1], mix.weights, optIn);
  // one slot per try: a category with repeat r has r slots, drawn without replacement like the categories were
  const left = makers.filter((m) => factor(m) > 0).flatMap((m) => Array.from({ length: mix.repeat?.[m[1]] ?? 1 }, () => m));
  const out: QA[] = [];
  const asked = new Set<string>();
  while (out.length < k && left.length > 0) {
    const i = rng.weighted(left.map((m) => m[0] * factor(m)));
    const [, category, make] = left.splice(i, 1)[0]!;
    const q = make();
    if (q && !asked.has(q.question)) {
      asked.add(q.question);
      out.push({ category, ...q });
    }
  }
  return out;
}

const WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'];
export function numberWord(n: number): string {
  return WORDS[n] ?? String(n);
}

/** "a, b and c" */
export function listWords(items: readonly string[]): string {
  if (items.length <= 1) return items[0] ?? '';
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

export function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
