// `vlmkit eval`: a model (and optionally a LoRA adapter) answers every row of a JSONL file; the answers are
// scored by a metric and a report gives the score, a per-category table and the rows it got wrong.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { readEvalRows } from '../eval/rows.js';
import { METRICS, type MetricName } from '../eval/metrics.js';
import { runEval, type EvalReport } from '../eval/runner.js';
import { writeBytesAtomic } from '../eval/draw.js';
import { inspectModel, loadVlm } from '../api.js';
import { ProgressBar } from '../train/metrics.js';
import { GENERATION_FLAGS, GENERATION_USAGE, argError, generationOptions, MODEL_FLAG_USAGE, modelDir, parsing, QUANT_FLAG_USAGE, quantOption } from './args.js';
import { type CliIo, status, write } from './io.js';

export const EVAL_USAGE = `usage: vlmkit eval [--model <dir>] --data <test.jsonl> [--metric exact|relaxed|vqa|anls|iou] [options]
${MODEL_FLAG_USAGE}
  --adapter DIR             a LoRA adapter (PEFT folder, e.g. from vlmkit train) to load on the model
  --data FILE               JSONL rows (messages or prompt/completion, "images"); the reference is the row's
                            "answers" or "answer", else its last assistant message
  --metric M                exact (default): normalised exact match; relaxed: ChartQA (numbers within 5%);
                            vqa: VQAv2 accuracy; anls: DocVQA ANLS; iou: boxes from <locNNNN> tokens vs "box"
  --category-field NAME     the row field to group scores by (default "category")
  --batch-size N            rows generated together (default 8)
  --max-rows N              evaluate the first N rows only
  --skip-bad-rows           leave out rows that cannot be evaluated (missing image, ...) and list them
  --out FILE                write the JSON report there (atomically)
  --baseline FILE           an earlier report (--out) of the same rows, e.g. before fine-tuning: the summary puts
                            its scores beside these, per category, and the JSON report carries them as "baseline"
  --json                    print the JSON report on stdout instead of the summary
  --f32                     load every weight as f32
${QUANT_FLAG_USAGE}
${GENERATION_USAGE}
Answers are greedy and at most 64 tokens unless --temperature / --max-new-tokens say otherwise.`;

function positiveInt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(x) || x < 1) throw argError(`--${flag} takes a whole number >= 1, got ${JSON.stringify(v)}`);
  return x;
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/** An earlier report's scores, set beside a new one's (--baseline). */
export interface Baseline {
  report: string;
  /** rows it scored */
  rows: number;
  model: string | null;
  adapter: string | null;
  score: number;
  accuracy: number;
  per_category: Record<string, { rows: number; score: number; accuracy: number }>;
}

/**
 * The scores of an earlier `vlmkit eval --out` report of the same metric as the run it is compared with (its rows
 * are checked against the run's once scored: baselineRowsMatch).
 */
export function readBaseline(file: string, metric: MetricName): Baseline {
  let j: Partial<EvalReport> & { model?: string; adapter?: string | null };
  try {
    j = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw argError(code ? `--baseline: cannot read ${file} (${code}); give the path of an earlier report (vlmkit eval --out)` : `--baseline: ${file} is not JSON (${(e as Error).message}); give an earlier report of vlmkit eval --out`);
  }
  const cats = j?.per_category;
  if (!j || typeof j !== 'object' || typeof j.score !== 'number' || typeof j.accuracy !== 'number' || typeof j.rows !== 'number' || !cats || typeof cats !== 'object')
    throw argError(`--baseline: ${file} is not a report of vlmkit eval (no score, accuracy, rows and per_category); give one written by --out`);
  if (j.metric !== metric) throw argError(`--baseline: ${file} scored --metric ${j.metric}, this run --metric ${metric}; compare reports of the same metric`);
  const per: Baseline['per_category'] = {};
  for (const [k, v] of Object.entries(cats)) if (v && typeof v.score === 'number' && typeof v.accuracy === 'number') per[k] = { rows: v.rows, score: v.score, accuracy: v.accuracy };
  return { report: file, rows: j.rows, model: typeof j.model === 'string' ? j.model : null, adapter: j.adapter ?? null, score: j.score, accuracy: j.accuracy, per_category: per };
}

/** A baseline of another number of rows is not of the same set: a change would mean nothing. */
export function baselineRowsMatch(b: Baseline, rows: number): void {
  if (b.rows !== rows) throw argError(`--baseline: ${b.report} scored ${b.rows} rows, this run ${rows}; compare reports of the same rows (same --data, --max-rows)`);
}

/** The report as a few lines for a terminal; with a baseline, its accuracy beside each and the change. */
export function summaryText(r: EvalReport, data: string, showWrong = 5, baseline?: Baseline): string {
  const lines = [`${r.metric} on ${data}: ${r.rows} rows, accuracy ${pct(r.accuracy)}, score ${r.score.toFixed(4)}${r.skipped.length ? ` (${r.skipped.length} skipped)` : ''}`];
  const cats = Object.entries(r.per_category);
  const w = Math.max(8, ...cats.map(([c]) => c.length));
  const change = (a: number, b: number | undefined) => (b === undefined ? '' : `  ${pct(b).padStart(8)}  ${`${a >= b ? '+' : ''}${((a - b) * 100).toFixed(1)}`.padStart(6)}`);
  lines.push(`  ${'category'.padEnd(w)}  ${'rows'.padStart(6)}  ${'score'.padStart(7)}  ${'accuracy'.padStart(8)}${baseline ? `  ${'baseline'.padStart(8)}  ${'change'.padStart(6)}` : ''}`);
  for (const [c, s] of cats) lines.push(`  ${c.padEnd(w)}  ${String(s.rows).padStart(6)}  ${s.score.toFixed(4).padStart(7)}  ${pct(s.accuracy).padStart(8)}${baseline ? change(s.accuracy, baseline.per_category[c]?.accuracy) : ''}`);
  if (baseline) lines.push(`  ${'all'.padEnd(w)}  ${String(r.rows).padStart(6)}  ${r.score.toFixed(4).padStart(7)}  ${pct(r.accuracy).padStart(8)}${change(r.accuracy, baseline.accuracy)}   (baseline: ${baseline.report})`);
  if (r.wrong.length) {
    lines.push(`wrong: ${r.wrong.length} rows${r.wrong.length > showWrong ? ` (first ${showWrong})` : ''}`);
    for (const x of r.wrong.slice(0, showWrong)) lines.push(`  line ${x.line} [${x.category}]: ${JSON.stringify(x.prediction)}, expected ${JSON.stringify(x.references.length === 1 ? x.references[0] : x.references)}`);
  }
  for (const s of r.skipped.slice(0, showWrong)) lines.push(`  skipped line ${s.line}: ${s.reason}`);
  return lines.join('\n') + '\n';
}

export async function evaluate(argv: string[], io: CliIo): Promise<number> {
  const { values } = parsing(EVAL_USAGE, () =>
    parseArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        adapter: { type: 'string' },
        data: { type: 'string' },
        metric: { type: 'string' },
        'category-field': { type: 'string' },
        'batch-size': { type: 'string' },
        'max-rows': { type: 'string' },
        'skip-bad-rows': { type: 'boolean' },
        out: { type: 'string' },
        baseline: { type: 'string' },
        json: { type: 'boolean' },
        f32: { type: 'boolean' }, quant: { type: 'string' },
        ...GENERATION_FLAGS,
      },
      allowPositionals: false,
      strict: true,
    }),
  );
  const dir = modelDir(values);
  const quant = quantOption(values);
  if (!values.data) throw argError(`--data <file.jsonl> is required: the rows to evaluate (vlmkit data shapes makes test.jsonl)\n${EVAL_USAGE}`);
  const metric = (values.metric ?? 'exact') as MetricName;
  if (!METRICS.includes(metric)) throw argError(`--metric takes one of ${METRICS.join(', ')}; got ${JSON.stringify(values.metric)}`);
  const batchSize = positiveInt('batch-size', values['batch-size']) ?? 8;
  const maxRows = positiveInt('max-rows', values['max-rows']);
  const gen = generationOptions(values);
  gen.maxNewTokens ??= 64;
  if (gen.temperature === undefined) gen.doSample = false; // scores must not depend on a checkpoint's sampling defaults
  const model = inspectModel(dir); // a missing directory or an unsupported model_type fails here, before anything heavy
  const skipBadRows = values['skip-bad-rows'] === true;
  const { rows, skipped } = await readEvalRows(values.data, { maxRows, skipBadRows, categoryField: values['category-field'] });
  if (rows.length === 0) throw argError(`--data ${values.data} has no rows to evaluate${skipped.length ? ` (${skipped.length} skipped as bad)` : ''}; give a JSONL file with at least one row`);
  // read and checked before the model loads; its row count once the rows are scored (rows can be skipped as bad)
  const baseline = values.baseline !== undefined ? readBaseline(values.baseline, metric) : undefined;

  status(io, `loading ${dir} ...`);
  const vlm = await loadVlm(model, { dtype: values.f32 ? 'f32' : undefined, quant });
  try {
    if (values.adapter) {
      const { loadAdapter } = await import('../train/peft.js');
      loadAdapter(vlm.model, values.adapter);
    }
    const bar = new ProgressBar(io.stderr, rows.length);
    let lastTenth = 0;
    const report = await runEval(vlm, rows, {
      metric,
      batchSize,
      generate: gen,
      skipBadRows,
      source: values.data,
      onProgress: (done, total) => {
        if (bar.enabled) return bar.update(done);
        // not a terminal: a line every 10% (logs of long runs)
        const tenth = Math.floor((done * 10) / total);
        if (total >= 20 && tenth > lastTenth) {
          lastTenth = tenth;
          io.stderr.write(`eval: ${done}/${total} rows\n`);
        }
      },
    });
    bar.clear();
    if (baseline) baselineRowsMatch(baseline, report.rows);
    const full = {
      model: dir,
      adapter: values.adapter ?? null,
      data: values.data,
      ...report,
      skipped: [...skipped, ...report.skipped].sort((a, b) => a.line - b.line),
      ...(baseline ? { baseline } : {}),
    };
    if (values.out) writeBytesAtomic(values.out, Buffer.from(JSON.stringify(full, null, 2) + '\n', 'utf8'));
    await write(io.stdout, values.json ? JSON.stringify(full) + '\n' : summaryText(full, values.data, 5, baseline) + (values.out ? `report written to ${values.out}\n` : ''));
    return 0;
  } finally {
    vlm.dispose();
  }
}
