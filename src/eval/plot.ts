// Line plots as PNG pictures (a training run's loss curve): people read a curve faster than a metrics file. Drawn
// with the data generators' rasterizer and bitmap font, so no plotting or canvas package is needed.
import { Canvas, rect, segment, type Rgb } from '../data/raster.js';
import { drawText, drawTextCentered, textHeight, textWidth } from '../data/font.js';

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  colour: Rgb;
  /** stroke width in pixels (default 2) */
  width?: number;
}

export interface PlotOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** a logarithmic y axis (losses over orders of magnitude) */
  logY?: boolean;
}

const INK: Rgb = [40, 40, 40];
const GRID: Rgb = [225, 225, 225];
const WHITE: Rgb = [255, 255, 255];

/** Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten, about `want` of them. */
export function ticks(lo: number, hi: number, want = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / want;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * Ticks of a log axis spanning log10 values [lo, hi]: the powers of ten inside it, or, where fewer than two fall
 * inside (a loss that moves within one decade, as a fine-tuning phase's does), round linear steps of the values.
 */
export function logTicks(lo: number, hi: number): number[] {
  const decades = ticks(Math.floor(lo), Math.ceil(hi), Math.ceil(hi) - Math.floor(lo)).filter((t) => t >= lo && t <= hi);
  if (decades.length >= 2) return decades.map((t) => 10 ** t);
  return ticks(10 ** lo, 10 ** hi).filter((t) => t > 0 && Math.log10(t) >= lo && Math.log10(t) <= hi);
}

/** A tick's label; `step` (the distance between ticks) sets the digits, so that neighbours never read alike. */
function label(v: number, step = Infinity): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 10000) return `${(v / 1000).toFixed(Math.max(0, Math.ceil(-Math.log10(step / 1000))))}K`;
  if (a >= 10) return String(Math.round(v));
  return String(Number(v.toPrecision(2)));
}

/** Draws the series as lines on axes with ticks, a title, axis labels and a legend. */
export function linePlot(series: readonly Series[], o: PlotOptions = {}): Canvas {
  const W = o.width ?? 720;
  const H = o.height ?? 420;
  const canvas = new Canvas(W, H);
  canvas.clear(WHITE);
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logY || y > 0));
  if (pts.length === 0) throw new Error('plot: no finite points to draw');
  const fy = (y: number) => (o.logY ? Math.log10(y) : y);
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => fy(p[1]))), Math.max(...pts.map((p) => fy(p[1])))];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const pad = (y1 - y0) * 0.05;
  [y0, y1] = [y0 - pad, y1 + pad];

  const s = 2; // font scale
  const left = 16 + textHeight(s) + 8 + textWidth('0.00', s) + 8;
  const top = o.title ? 16 + textHeight(s) + 12 : 16;
  const bottom = H - (16 + textHeight(s) + 8 + textHeight(s) + 8);
  const right = W - 16;
  const px = (x: number) => left + ((x - x0) / (x1 - x0)) * (right - left);
  const py = (y: number) => bottom - ((fy(y) - y0) / (y1 - y0)) * (bottom - top);

  // grid and tick labels
  const yTicks = o.logY ? logTicks(y0, y1) : ticks(y0, y1);
  for (const t of yTicks) {
    const y = Math.round(py(t));
    canvas.fill(rect(left, y, right, y + 1), GRID);
    const l = label(t);
    drawText(canvas, l, left - 8 - textWidth(l, s), y - textHeight(s) / 2, s, INK);
  }
  const xTicks = ticks(x0, x1);
  const xStep = xTicks.length > 1 ? xTicks[1]! - xTicks[0]! : Infinity;
  for (const t of xTicks) {
    const x = Math.round(px(t));
    canvas.fill(rect(x, top, x + 1, bottom), GRID);
    // centred under its tick, but kept inside the picture (the last tick sits at the right edge)
    const l = label(t, xStep), lw = textWidth(l, s);
    drawText(canvas, l, Math.min(W - 2 - lw, Math.max(2, x - lw / 2)), bottom + 8, s, INK);
  }
  canvas.fill(rect(left - 1, top, left + 1, bottom + 1), INK);
  canvas.fill(rect(left - 1, bottom - 1, right, bottom + 1), INK);

  for (const sr of series) {
    const p = sr.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logY || y > 0));
    const w = sr.width ?? 2;
    if (p.length === 1) canvas.fill(rect(px(p[0]![0]) - w, py(p[0]![1]) - w, px(p[0]![0]) + w, py(p[0]![1]) + w), sr.colour);
    for (let i = 1; i < p.length; i++) canvas.fill(segment([px(p[i - 1]![0]), py(p[i - 1]![1])], [px(p[i]![0]), py(p[i]![1])], w), sr.colour);
  }

  if (o.title) drawTextCentered(canvas, o.title, (left + right) / 2, 16, s, INK);
  if (o.xLabel) drawTextCentered(canvas, o.xLabel, (left + right) / 2, H - 16 - textHeight(s), s, INK);
  if (o.yLabel) drawText(canvas, o.yLabel, 16, top - textHeight(s) - 4 < 0 ? 0 : top - textHeight(s) - 4, s, INK);
  // legend, top right
  let ly = top + 8;
  for (const sr of series) {
    const tw = textWidth(sr.name, s);
    const lx = right - 8 - tw - 24;
    canvas.fill(rect(lx, ly + textHeight(s) / 2 - 1, lx + 18, ly + textHeight(s) / 2 + 2), sr.colour);
    drawText(canvas, sr.name, lx + 24, ly, s, INK);
    ly += textHeight(s) + 8;
  }
  return canvas;
}

/** A training run's metrics.jsonl lines -> the train loss (and its running mean over `smooth` steps) and eval loss. */
export function lossSeries(lines: readonly Record<string, unknown>[], smooth = 50): Series[] {
  const train: [number, number][] = [];
  const evals: [number, number][] = [];
  for (const r of lines) {
    if (r.type === 'train' && typeof r.step === 'number' && typeof r.loss === 'number' && r.skipped !== true) train.push([r.step, r.loss]);
    if (r.type === 'eval' && typeof r.step === 'number' && typeof r.eval_loss === 'number') evals.push([r.step, r.eval_loss]);
  }
  const out: Series[] = [];
  if (train.length) {
    out.push({ name: 'train loss', points: train, colour: [170, 200, 235], width: 1 });
    if (train.length > smooth) {
      const mean: [number, number][] = [];
      let sum = 0;
      for (let i = 0; i < train.length; i++) {
        sum += train[i]![1];
        if (i >= smooth) sum -= train[i - smooth]![1];
        if (i >= smooth - 1) mean.push([train[i]![0], sum / smooth]);
      }
      out.push({ name: `mean of ${smooth}`, points: mean, colour: [30, 90, 180] });
    }
  }
  if (evals.length) out.push({ name: 'eval loss', points: evals, colour: [220, 90, 30], width: 3 });
  return out;
}
