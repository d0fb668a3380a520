// The evaluation loop: rows in batches through the model's batched generation, each answer scored by the
// metric, then a report with the overall score, a per-category table and the rows it got wrong.
// The model is anything with Vlm's generateBatch, so tests can stand in a stub that answers known strings.
import type { BatchItem, VlmGenerateOptions } from '../api.js';
import { parseBoxes, type PixelBox } from '../data/loc.js';
import { VlmkitError } from '../errors.js';
import { loadImage, type RgbImage } from '../processing/decode.js';
import { iou, TEXT_METRICS, type MetricName } from './metrics.js';
import type { BadRow, EvalRow } from './rows.js';

export interface EvalModel {
  generateBatch(items: readonly BatchItem[], opts?: VlmGenerateOptions): Promise<readonly { text: string }[]>;
}

export interface EvalOptions {
  metric: MetricName;
  /** rows generated together (default 8) */
  batchSize?: number;
  /** generation settings (max new tokens, greedy or sampling, image options) */
  generate?: VlmGenerateOptions;
  /** a row whose image cannot be decoded or whose prompt cannot be generated is skipped instead of failing */
  skipBadRows?: boolean;
  /** the data file, for error messages */
  source?: string;
  /** image decoding (default: the processor's decoder, EXIF orientation applied) */
  loadImage?: (path: string) => Promise<RgbImage>;
  /** rows done so far (skipped ones included) of the total */
  onProgress?: (done: number, total: number) => void;
}

/** IoU rows at or above this count as correct (the usual grounding accuracy, Acc@0.5). */
export const IOU_THRESHOLD = 0.5;

export interface RowResult {
  line: number;
  category: string;
  prediction: string;
  references: string[];
  score: number;
  correct: boolean;
  /** iou only: the reference box and the first predicted one (null when the answer has none), in pixels */
  box?: PixelBox;
  predicted_box?: PixelBox | null;
}

export interface CategoryScore {
  rows: number;
  score: number;
  accuracy: number;
}

export interface EvalReport {
  metric: MetricName;
  /** rows scored */
  rows: number;
  /** mean of the metric over the rows (exact / relaxed / VQA accuracy, mean ANLS, mean IoU) */
  score: number;
  /** fraction of rows counted correct: full credit, or IoU >= 0.5 for iou */
  accuracy: number;
  /** iou only: the same two numbers under their usual names */
  mean_iou?: number;
  accuracy_iou50?: number;
  per_category: Record<string, CategoryScore>;
  skipped: BadRow[];
  wrong: RowResult[];
  seconds: number;
}

function referenceBox(row: EvalRow, width: number, height: number): PixelBox | null {
  if (row.box) return row.box;
  // no "box" field: the reference answer's own location tokens
  for (const r of row.references) {
    const b = parseBoxes(r, width, height).boxes[0];
    if (b) return { x0: b.x0, y0: b.y0, x1: b.x1, y1: b.y1 };
  }
  return null;
}

function scoreRow(metric: MetricName, row: EvalRow, prediction: string, size: { width: number; height: number } | null): RowResult {
  const base = { line: row.line, category: row.category, prediction, references: row.references };
  if (metric !== 'iou') {
    const score = TEXT_METRICS[metric](prediction, row.references);
    return { ...base, score, correct: score === 1 };
  }
  if (!size) throw new Error('iou rows are checked to have an image');
  const box = referenceBox(row, size.width, size.height)!;
  const p = parseBoxes(prediction, size.width, size.height).boxes[0];
  const predicted = p ? { x0: p.x0, y0: p.y0, x1: p.x1, y1: p.y1 } : null;
  const score = predicted ? iou(predicted, box) : 0;
  return { ...base, score, correct: score >= IOU_THRESHOLD, box, predicted_box: predicted };
}

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/** The report of scored rows (exported for tests and for tools that score answers they already have). */
export function buildReport(metric: MetricName, results: readonly RowResult[], skipped: readonly BadRow[], seconds: number): EvalReport {
  const byCat = new Map<string, RowResult[]>();
  for (const r of results) byCat.set(r.category, [...(byCat.get(r.category) ?? []), r]);
  const per_category: Record<string, CategoryScore> = {};
  for (const cat of [...byCat.keys()].sort()) {
    const rs = byCat.get(cat)!;
    per_category[cat] = { rows: rs.length, score: mean(rs.map((r) => r.score)), accuracy: mean(rs.map((r) => (r.correct ? 1 : 0))) };
  }
  const score = mean(results.map((r) => r.score));
  const accuracy = mean(results.map((r) => (r.correct ? 1 : 0)));
  return {
    metric,
    rows: results.length,
    score,
    accuracy,
    ...(metric === 'iou' && { mean_iou: score, accuracy_iou50: accuracy }),
    per_category,
    skipped: [...skipped].sort((a, b) => a.line - b.line),
    wrong: results.filter((r) => !r.correct),
    seconds,
  };
}

interface Ready {
  row: EvalRow;
  images: RgbImage[];
}

export async function runEval(model: EvalModel, rows: readonly EvalRow[], o: EvalOptions): Promise<EvalReport> {
  const t0 = performance.now();
  const batchSize = o.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new VlmkitError('E_ARGS', `the batch size must be a whole number >= 1, got ${batchSize}`);
  const decode = o.loadImage ?? ((p: string) => loadImage(p, { maxImagePixels: o.generate?.maxImagePixels }));
  const where = (line: number) => `${o.source ?? 'row'}:${line}`;
  const skipped: BadRow[] = [];
  const results: RowResult[] = [];
  const fail = (row: EvalRow, reason: string) => {
    if (!o.skipBadRows) throw new VlmkitError('E_DATA', `${where(row.line)}: ${reason} (or pass --skip-bad-rows to leave such rows out)`);
    skipped.push({ line: row.line, reason });
  };

  // iou rows need an image to measure in and a reference box; found before any generation
  const todo: EvalRow[] = [];
  for (const row of rows) {
    if (o.metric === 'iou' && row.images.length === 0) fail(row, 'an iou row needs an image (the boxes are in its pixels)');
    else if (o.metric === 'iou' && !row.box && !row.references.some((r) => /<loc\d{4}>/.test(r))) fail(row, 'no reference box: give "box": {"x0", "y0", "x1", "y1"} or an answer with <locNNNN> tokens');
    else todo.push(row);
  }
  let done = rows.length - todo.length;
  o.onProgress?.(done, rows.length);

  const generate = async (batch: Ready[]) => {
    const out = await model.generateBatch(batch.map((b) => ({ prompt: b.row.prompt, images: b.images })), o.generate);
    if (out.length !== batch.length) throw new Error(`generateBatch gave ${out.length} answers for ${batch.length} prompts`);
    return out.map((r) => r.text.trim());
  };

  for (let i = 0; i < todo.length; i += batchSize) {
    const ready: Ready[] = [];
    for (const row of todo.slice(i, i + batchSize)) {
      try {
        ready.push({ row, images: await Promise.all(row.images.map(decode)) });
      } catch (e) {
        if (!(e instanceof VlmkitError)) throw e;
        fail(row, e.message);
      }
    }
    let answers: (string | null)[];
    try {
      answers = ready.length ? await generate(ready) : [];
    } catch (e) {
      if (!(e instanceof VlmkitError)) throw e;
      if (!o.skipBadRows) {
        const lines = ready.map((r) => r.row.line).join(', ');
        throw new VlmkitError(e.code, `${o.source ?? 'rows'} (line${ready.length > 1 ? 's' : ''} ${lines}): ${e.message} (or pass --skip-bad-rows to leave such rows out)`);
      }
      // one bad prompt (too long for the context, say) must not take its batch with it: retry row by row
      answers = [];
      for (const r of ready) {
        let a: string | null = null;
        try {
          if (ready.length > 1) a = (await generate([r]))[0]!;
          else fail(r.row, e.message);
        } catch (e1) {
          if (!(e1 instanceof VlmkitError)) throw e1;
          fail(r.row, e1.message);
        }
        answers.push(a);
      }
    }
    ready.forEach((r, k) => {
      const a = answers[k];
      if (a === null || a === undefined) return;
      const size = r.images[0] ? { width: r.images[0].width, height: r.images[0].height } : null;
      results.push(scoreRow(o.metric, r.row, a, size));
    });
    done += todo.slice(i, i + batchSize).length;
    o.onProgress?.(done, rows.length);
  }
  return buildReport(o.metric, results, skipped, (performance.now() - t0) / 1000);
}
