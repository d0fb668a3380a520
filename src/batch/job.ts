// A batch job: the input rows in file order, several prompts per generation (rows next to each other with the
// same sampling settings, up to batchSize), each batch's results appended as soon as it is done. Groups are cut
// from all rows, done or not, so a resumed job runs the same groups as an uninterrupted one. A row that fails
// becomes an error line and the job goes on: a failing batch is retried row by row to find which one it was.
import type { BatchItem, GenerateResult, Vlm, VlmGenerateOptions } from '../api.js';
import type { RgbImage } from '../processing/decode.js';
import type { OpenedResults, ResultLine } from './results.js';
import type { BatchRow } from './rows.js';
import { probeVideo } from '../video/index.js';

export interface BatchProgress {
  /** rows finished in this run (answers and errors) */
  done: number;
  /** rows this run has to do */
  total: number;
  errors: number;
  completionTokens: number;
}

export interface BatchJobOptions {
  batchSize: number;
  /** settings a row's own "sampling" overrides */
  defaults: VlmGenerateOptions;
  /** stops after the batch in flight is abandoned (its rows are not written) */
  signal?: AbortSignal;
  onProgress?: (p: BatchProgress) => void;
}

/** Consecutive runnable rows with the same sampling, at most `size` a group; rows that cannot run stand alone. */
export function groupRows(rows: readonly BatchRow[], size: number): BatchRow[][] {
  const groups: BatchRow[][] = [];
  let cur: BatchRow[] = [];
  for (const r of rows) {
    if (r.problem !== undefined) {
      if (cur.length) groups.push(cur);
      groups.push([r]);
      cur = [];
      continue;
    }
    if (cur.length && (cur.length >= size || cur[0]!.samplingKey !== r.samplingKey)) {
      groups.push(cur);
      cur = [];
    }
    cur.push(r);
  }
  if (cur.length) groups.push(cur);
  return groups;
}

const oneLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0]!.trim();

function errorLine(r: BatchRow, message: string): ResultLine {
  return r.key.startsWith('line:') ? { id: r.id, line: r.line, error: message } : { id: r.id, error: message };
}

function answerLine(r: BatchRow, g: GenerateResult): ResultLine {
  return { id: r.id, text: g.text, finish_reason: g.finishReason, prompt_tokens: g.promptTokens, completion_tokens: g.tokenIds.length };
}

/** Runs the rows `results` does not have yet; returns the progress at the end. */
export async function runBatchJob(vlm: Vlm, rows: readonly BatchRow[], results: OpenedResults, o: BatchJobOptions): Promise<BatchProgress> {
  const p: BatchProgress = { done: 0, total: rows.filter((r) => !results.done.has(r.key)).length, errors: 0, completionTokens: 0 };
  const imageOpts = { longestEdge: o.defaults.longestEdge, doImageSplitting: o.defaults.doImageSplitting, maxImagePixels: o.defaults.maxImagePixels };
  for (const group of groupRows(rows, o.batchSize)) {
    if (o.signal?.aborted) break;
    const todo = group.filter((r) => !results.done.has(r.key));
    if (!todo.length) continue;
    const byRow = new Map<BatchRow, ResultLine>();
    const ready: { row: BatchRow; images: RgbImage[]; videos: string[] }[] = [];
    for (const row of todo) {
      if (row.problem !== undefined) {
        byRow.set(row, errorLine(row, row.problem));
        continue;
      }
      try {
        // decoded (videos probed) one row at a time, so an unreadable file fails its own row only
        const images = await vlm.processor.loadImages(row.images, imageOpts);
        for (const v of row.videos) await probeVideo(v);
        ready.push({ row, images, videos: row.videos });
      } catch (e) {
        byRow.set(row, errorLine(row, oneLine(e)));
      }
    }
    if (ready.length) {
      const opts = { ...o.defaults, ...ready[0]!.row.sampling, signal: o.signal };
      const items: BatchItem[] = ready.map((x) => ({ prompt: x.row.messages, images: x.images, videos: x.videos }));
      let answers: (GenerateResult | Error)[];
      try {
        answers = await vlm.generateBatch(items, opts);
      } catch (e) {
        if (o.signal?.aborted) break;
        if (ready.length === 1) answers = [e as Error];
        else {
          answers = [];
          for (const item of items) answers.push(await vlm.generate(item.prompt, { images: item.images, videos: item.videos }, opts).catch((err: Error) => err));
        }
      }
      // an interrupted generation ends early ('aborted'): none of this batch is written
      if (o.signal?.aborted) break;
      ready.forEach((x, i) => {
        const a = answers[i]!;
        byRow.set(x.row, a instanceof Error ? errorLine(x.row, oneLine(a)) : answerLine(x.row, a));
      });
    }
    // in the file's order, so an uninterrupted run and a resumed one write the same lines
    const lines = todo.map((r) => byRow.get(r)!);
    results.append(lines);
    for (const l of lines) {
      p.done++;
      if (l.error !== undefined) p.errors++;
      p.completionTokens += l.completion_tokens ?? 0;
    }
    o.onProgress?.(p);
  }
  return p;
}
