// Answer metrics as the literature defines them. Each scores one prediction against a row's reference answers
// (one or several) and gives a number in [0, 1].
//
//   exact    normalised exact match: trim, lower case, inner whitespace collapsed, one trailing period dropped
//   relaxed  ChartQA's relaxed accuracy: a numeric answer is right within 5% of the target, any other exactly
//   vqa      VQAv2 accuracy min(#humans that gave the answer / 3, 1), averaged over the 10-choose-9 annotator
//            subsets as the official evaluation does; one reference answer is a plain match; VQA normalisation
//   anls     DocVQA's ANLS: 1 - normalised Levenshtein distance, 0 when that is under 0.5, the best reference
//   iou      grounding: intersection over union of the predicted box and the reference box
import type { PixelBox } from '../data/loc.js';
import { vqaNormalize } from './vqa.js';

export const METRICS = ['exact', 'relaxed', 'vqa', 'anls', 'iou'] as const;
export type MetricName = (typeof METRICS)[number];

export function normalizeExact(s: string): string {
  return s.trim().toLowerCase().replace(/\s+/g, ' ').replace(/\.$/, '').trim();
}

export function exactMatch(prediction: string, references: readonly string[]): number {
  const p = normalizeExact(prediction);
  return references.some((r) => normalizeExact(r) === p) ? 1 : 0;
}

// a number as charts print it: optional sign, digits (thousands may be grouped with commas), optional decimals
const NUMBER = /^[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?$/;

/**
 * The value of a numeric answer, or null. A trailing % divides by 100 (as pix2struct's ChartQA scorer does, so
 * "45%" and "0.45" agree); commas are read as thousands separators ("1,234" is 1234).
 */
export function parseNumber(s: string): number | null {
  let t = s.trim().replace(/\.$/, '');
  let scale = 1;
  if (t.endsWith('%')) {
    t = t.slice(0, -1).trim();
    scale = 0.01;
  }
  if (!t || !/\d/.test(t) || !NUMBER.test(t)) return null;
  const v = Number(t.replace(/,/g, '')) * scale;
  return Number.isFinite(v) ? v : null;
}

/** ChartQA relaxed correctness of one reference: within 5% of a numeric target (a target of 0 must be 0). */
function relaxedOne(prediction: string, reference: string): boolean {
  const target = parseNumber(reference);
  const value = parseNumber(prediction);
  if (target !== null && value !== null) {
    if (target === 0) return value === 0;
    return Math.abs(value - target) / Math.abs(target) <= 0.05;
  }
  return normalizeExact(prediction) === normalizeExact(reference);
}

export function relaxedAccuracy(prediction: string, references: readonly string[]): number {
  return references.some((r) => relaxedOne(prediction, r)) ? 1 : 0;
}

/**
 * VQA accuracy. With n > 1 answers (VQAv2 has 10 per question), for each annotator left out the score is
 * min(1, matches among the other n - 1 / 3); the mean of those n scores is the row's accuracy.
 */
export function vqaAccuracy(prediction: string, references: readonly string[]): number {
  if (references.length === 0) return 0;
  const p = vqaNormalize(prediction);
  const refs = references.map(vqaNormalize);
  if (refs.length === 1) return refs[0] === p ? 1 : 0;
  const matches = refs.filter((r) => r === p).length;
  let sum = 0;
  for (const r of refs) sum += Math.min(1, (matches - (r === p ? 1 : 0)) / 3);
  return sum / refs.length;
}

/** Levenshtein distance over code points, in O(min(a, b)) memory. */
export function levenshtein(a: string, b: string): number {
  let s = [...a];
  let t = [...b];
  if (s.length < t.length) [s, t] = [t, s];
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  let cur = new Array<number>(t.length + 1);
  for (let i = 1; i <= s.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= t.length; j++) {
      const sub = prev[j - 1]! + (s[i - 1] === t[j - 1] ? 0 : 1);
      cur[j] = Math.min(sub, prev[j]! + 1, cur[j - 1]! + 1);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[t.length]!;
}

const anlsNormalize = (s: string) => s.trim().toLowerCase().split(/\s+/).filter(Boolean).join(' ');

/** ANLS with the DocVQA threshold: a similarity under 0.5 scores 0. Two empty strings are identical (1). */
export function anls(prediction: string, references: readonly string[], threshold = 0.5): number {
  const p = anlsNormalize(prediction);
  let best = 0;
  for (const ref of references) {
    const r = anlsNormalize(ref);
    const len = Math.max([...p].length, [...r].length);
    const sim = len === 0 ? 1 : 1 - levenshtein(p, r) / len;
    if (sim > best) best = sim;
  }
  return best < threshold ? 0 : best;
}

/** Intersection over union of two boxes (0 when they do not overlap or both are empty and differ). */
export function iou(a: PixelBox, b: PixelBox): number {
  const area = (q: PixelBox) => Math.max(0, q.x1 - q.x0) * Math.max(0, q.y1 - q.y0);
  const iw = Math.max(0, Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0));
  const ih = Math.max(0, Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0));
  const inter = iw * ih;
  const union = area(a) + area(b) - inter;
  if (union <= 0) return a.x0 === b.x0 && a.y0 === b.y0 && a.x1 === b.x1 && a.y1 === b.y1 ? 1 : 0;
  return inter / union;
}

/** The text metrics by name (iou needs the images' sizes: see runner.ts). */
export const TEXT_METRICS: Record<Exclude<MetricName, 'iou'>, (prediction: string, references: readonly string[]) => number> = {
  exact: exactMatch,
  relaxed: relaxedAccuracy,
  vqa: vqaAccuracy,
  anls,
};
