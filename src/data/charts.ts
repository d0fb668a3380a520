// "charts": bar, line and pie charts with a title, labelled values (bars and points carry their number, pie
// slices their percentage in the legend) and ChartQA-style questions: read a value, compare two, the largest or
// smallest, the difference, the title and the kind of chart. Text is drawn with our bitmap font in capitals, and
// answers quote labels exactly as drawn.
import { drawText, drawTextCentered, textHeight, textWidth } from './font.js';
import { Canvas, Ellipse, Polygon, rect, segment, type Point, type Rgb } from './raster.js';
import type { Rng } from './rng.js';
import { phrase, pickQuestions, type Generator, type Maker, type QA, type QuestionMix } from './types.js';

export type ChartKind = 'bar' | 'line' | 'pie';

export interface Chart {
  kind: ChartKind;
  title: string;
  labels: string[];
  /** whole numbers, all different (so largest / smallest are unique); pie: percentages summing to 100 */
  values: number[];
}

const CATEGORY_LABELS = ['APPLE', 'PEAR', 'PLUM', 'LIME', 'KIWI', 'FIG', 'MANGO', 'GRAPE', 'LEMON', 'MELON', 'OAK', 'PINE', 'ELM', 'ASH', 'MAPLE', 'NORTH', 'SOUTH', 'EAST', 'WEST', 'CARS', 'BIKES', 'BUSES', 'TRAIN', 'BOATS', 'CATS', 'DOGS', 'BIRDS', 'FISH', 'TEA', 'MILK', 'JUICE', 'WATER', 'SODA'];
const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const TITLES = ['SALES', 'VISITORS', 'SCORES', 'PROFIT', 'VOTES', 'USERS', 'ORDERS', 'RAINFALL', 'TICKETS', 'MEMBERS', 'DOWNLOADS', 'REVENUE', 'SURVEY', 'BUDGET', 'EXPORTS'];
const PALETTE: readonly Rgb[] = [
  [66, 110, 200], [230, 120, 40], [60, 160, 80], [210, 60, 60], [140, 90, 190], [40, 170, 180], [200, 170, 30], [150, 100, 60],
];
const INK: Rgb = [30, 30, 30];
const AXIS: Rgb = [90, 90, 90];

/** Distinct whole numbers in [lo, hi]. */
function distinct(rng: Rng, n: number, lo: number, hi: number): number[] {
  const out: number[] = [];
  while (out.length < n) {
    const v = rng.int(lo, hi);
    if (!out.includes(v)) out.push(v);
  }
  return out;
}

/** n distinct percentages, each at least 5, summing to 100. */
function percentages(rng: Rng, n: number): number[] {
  for (;;) {
    const cuts = distinct(rng, n - 1, 1, 99).sort((a, b) => a - b);
    const parts = [...cuts, 100].map((c, i) => c - (i ? cuts[i - 1]! : 0));
    if (parts.every((p) => p >= 5) && new Set(parts).size === n) return parts;
  }
}

export function randomChart(rng: Rng): Chart {
  const kind = rng.pick(['bar', 'line', 'pie'] as const);
  const title = rng.chance(0.5) ? `${rng.pick(TITLES)} ${rng.int(2010, 2024)}` : rng.pick(TITLES);
  if (kind === 'line') {
    const n = rng.int(4, 7);
    const start = rng.int(2005, 2018);
    const labels = rng.chance(0.5) ? Array.from({ length: n }, (_, i) => String(start + i)) : MONTHS.slice(start % (13 - n)).slice(0, n);
    const top = rng.pick([20, 50, 100]);
    return { kind, title, labels, values: distinct(rng, n, 1, top) };
  }
  const n = kind === 'pie' ? rng.int(3, 5) : rng.int(3, 6);
  const labels = rng.sample(CATEGORY_LABELS, n);
  const values = kind === 'pie' ? percentages(rng, n) : distinct(rng, n, 1, rng.pick([10, 20, 50, 100]));
  return { kind, title, labels, values };
}

/** Font scale for labels: 1 up to 383 px, 2 from 384. */
function scaleFor(size: number): number {
  return Math.max(1, Math.floor(size / 384) + 1);
}

export function renderChart(chart: Chart, size: number, rng: Rng): Canvas {
  const c = new Canvas(size, size);
  c.clear([252, 252, 252]);
  const s = scaleFor(size);
  const th = textHeight(s);
  const titleScale = textWidth(chart.title, 2 * s) <= size - 8 ? 2 * s : s;
  drawTextCentered(c, chart.title, size / 2, 4 * s, titleScale, INK);
  const top = 4 * s + textHeight(titleScale) + 6 * s;
  const color = rng.pick(PALETTE);
  if (chart.kind === 'pie') {
    const legendW = Math.max(...chart.labels.map((l, i) => textWidth(`${l} ${chart.values[i]}%`, s))) + th + 4 * s;
    const r = Math.min((size - legendW - 12 * s) / 2, (size - top - 6 * s) / 2);
    const cx = 4 * s + r;
    const cy = top + (size - top) / 2;
    const colors = rng.sample(PALETTE, chart.labels.length);
    let a = -Math.PI / 2;
    chart.values.forEach((v, i) => {
      const b = a + (v / 100) * 2 * Math.PI;
      const pts: Point[] = [[cx, cy]];
      const steps = Math.max(2, Math.ceil((b - a) / 0.05));
      for (let k = 0; k <= steps; k++) {
        const t = a + ((b - a) * k) / steps;
        pts.push([cx + r * Math.cos(t), cy + r * Math.sin(t)]);
      }
      c.fill(new Polygon(pts), colors[i]!);
      a = b;
    });
    const lx = size - legendW;
    const lineH = th + 5 * s;
    let ly = cy - (lineH * chart.labels.length) / 2;
    chart.labels.forEach((l, i) => {
      c.block(Math.round(lx), Math.round(ly), th, th, colors[i]!);
      drawText(c, `${l} ${chart.values[i]}%`, lx + th + 3 * s, ly, s, INK);
      ly += lineH;
    });
    return c;
  }
  const left = 6 * s;
  const right = size - 6 * s;
  const base = size - th - 8 * s;
  const plotTop = top + th + 4 * s;
  const max = Math.max(...chart.values);
  const n = chart.labels.length;
  const slot = (right - left) / n;
  // line charts keep room under the lowest point for its label
  const floor = chart.kind === 'line' ? base - th - 8 * s : base;
  const yOf = (v: number) => floor - (v / max) * (floor - plotTop);
  c.fill(rect(left, base, right, base + Math.max(1, s)), AXIS);
  chart.labels.forEach((l, i) => drawTextCentered(c, l, left + slot * (i + 0.5), base + 4 * s, s, INK));
  if (chart.kind === 'bar') {
    const bw = slot * 0.6;
    chart.values.forEach((v, i) => {
      const x = left + slot * (i + 0.5);
      c.fill(rect(x - bw / 2, yOf(v), x + bw / 2, base), color);
      drawTextCentered(c, String(v), x, yOf(v) - th - 3 * s, s, INK);
    });
  } else {
    const pts = chart.values.map((v, i) => [left + slot * (i + 0.5), yOf(v)] as Point);
    for (let i = 0; i + 1 < pts.length; i++) c.fill(segment(pts[i]!, pts[i + 1]!, 2 * s), color);
    pts.forEach(([x, y], i) => {
      c.fill(new Ellipse(x, y, 2.5 * s, 2.5 * s), color);
      // a valley's label goes under the point, away from the lines
      const around = [pts[i - 1], pts[i + 1]].filter((p): p is Point => !!p).map((p) => p[1]);
      const valley = around.every((ny) => ny < y);
      drawTextCentered(c, String(chart.values[i]), x, valley ? y + 5 * s : y - th - 4 * s, s, INK);
    });
  }
  return c;
}

export const CHART_CATEGORIES = ['caption', 'chart_type', 'title', 'value', 'compare', 'max_min', 'difference'] as const;

const T = {
  caption: ['Describe the chart.', 'Describe this image.', 'What does this chart show?'],
  chart_type: ['What kind of chart is this?', 'What type of chart is shown?', 'Is this a bar, line or pie chart?'],
  title: ['What is the title of the chart?', 'What is the chart titled?', 'What does the title say?'],
  value: ['What is the value of {a}?', 'What value does {a} have?', 'How much is {a}?'],
  pieValue: ['What percentage is {a}?', 'What share does {a} have, in percent?', 'How many percent is {a}?'],
  higherWhich: ['Which is higher, {a} or {b}?', 'Which has the larger value: {a} or {b}?'],
  higherYesNo: ['Is {a} higher than {b}?', 'Is the value of {a} greater than that of {b}?'],
  max: ['Which label has the highest value?', 'Which category has the largest value?', 'What has the highest value?'],
  min: ['Which label has the lowest value?', 'Which category has the smallest value?', 'What has the lowest value?'],
  difference: ['What is the difference between {a} and {b}?', 'How much larger is {a} than {b}?', 'By how much does {a} exceed {b}?'],
};

const NOUN: Record<ChartKind, string> = { bar: 'bars', line: 'points', pie: 'slices' };

export function describeChart(chart: Chart): string {
  return `A ${chart.kind} chart titled ${chart.title} with ${chart.labels.length} ${NOUN[chart.kind]}.`;
}

export function askChart(chart: Chart, rng: Rng, k: number, mix?: QuestionMix): QA[] {
  const { labels, values } = chart;
  const idx = labels.map((_, i) => i);
  const two = () => rng.sample(idx, 2) as [number, number];
  const makers: Maker[] = [
    [0.6, 'caption', () => ({ question: phrase(rng, T.caption), answer: describeChart(chart) })],
    [0.4, 'chart_type', () => ({ question: phrase(rng, T.chart_type), answer: chart.kind })],
    [0.5, 'title', () => ({ question: phrase(rng, T.title), answer: chart.title })],
    [1.5, 'value', () => {
      const i = rng.pick(idx);
      return { question: phrase(rng, chart.kind === 'pie' ? T.pieValue : T.value, { a: labels[i]! }), answer: String(values[i]) };
    }],
    [1, 'compare', () => {
      const [i, j] = two();
      if (rng.chance(0.5)) return { question: phrase(rng, T.higherWhich, { a: labels[i]!, b: labels[j]! }), answer: values[i]! > values[j]! ? labels[i]! : labels[j]! };
      return { question: phrase(rng, T.higherYesNo, { a: labels[i]!, b: labels[j]! }), answer: values[i]! > values[j]! ? 'yes' : 'no' };
    }],
    [1, 'max_min', () => {
      const hi = rng.chance(0.5);
      const best = idx.reduce((a, b) => ((hi ? values[b]! > values[a]! : values[b]! < values[a]!) ? b : a));
      return { question: phrase(rng, hi ? T.max : T.min), answer: labels[best]! };
    }],
    [1, 'difference', () => {
      let [i, j] = two();
      if (values[i]! < values[j]!) [i, j] = [j, i];
      return { question: phrase(rng, T.difference, { a: labels[i]!, b: labels[j]! }), answer: String(values[i]! - values[j]!) };
    }],
  ];
  return pickQuestions(rng, k, makers, mix);
}

export const chartsGenerator: Generator = {
  name: 'charts',
  defaultSize: 256,
  minSize: 224,
  maxSize: 1024,
  categories: CHART_CATEGORIES,
  generate(rng, size, questions, mix) {
    const chart = randomChart(rng);
    return { canvas: renderChart(chart, size, rng), qas: askChart(chart, rng, questions, mix) };
  },
  text(rng, _size, questions) {
    return askChart(randomChart(rng), rng, questions);
  },
};
