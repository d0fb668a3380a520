// `vlmkit batch`: every row of a JSONL file, or every image of a folder asked the same prompts, answered into a
// results JSONL (src/batch), resumable, with progress on stderr. Ctrl-C stops at once; the rows already written
// stay, and --resume goes on from there.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { inspectModel, loadVlm } from '../api.js';
import { runBatchJob, type BatchProgress } from '../batch/job.js';
import { folderRows, readPrompts } from '../batch/folder.js';
import { openResults } from '../batch/results.js';
import { type BatchRow, parseRows } from '../batch/rows.js';
import { VlmkitError } from '../errors.js';
import { argError, GENERATION_FLAGS, GENERATION_USAGE, generationOptions, MODEL_FLAG_USAGE, modelDir, parsing, videoOptions } from './args.js';
import { type CliIo, status } from './io.js';

export const BATCH_USAGE = `usage: vlmkit batch --input rows.jsonl --out results.jsonl [--model <dir>] [--batch-size N] [--resume] [options]
       vlmkit batch --prompt "<question>"... <images folder> --out results.jsonl [options]
${MODEL_FLAG_USAGE}
  --input FILE              the rows, one JSON object a line: {"id", "image" | "images" | "video", "prompt" |
                            "messages", "fps", "max_frames", "sampling": {"temperature", "top_p", "top_k",
                            "max_tokens", "seed", "stop"}}; file paths are relative to FILE; a video row is
                            answered as \`vlmkit ask --video\` answers it ("fps", "max_frames" as --fps, --max-frames)
  <images folder>           instead of --input: every image (png, jpeg, gif, webp) under the folder, sorted by
                            path, its id the path relative to the folder; other files are left out
  --prompt TEXT             the question asked of every image of the folder; repeat it to ask several (the ids
                            become "<path>#1", "<path>#2", ...)
  --prompts FILE            more questions for the folder, one a line (asked after those of --prompt)
  --out FILE                the results, one JSON line per row: {"id", "text", "finish_reason", "prompt_tokens",
                            "completion_tokens"}, or {"id", "error"} for a row that failed (the job goes on)
  --batch-size N            prompts per generation (default 8; rows with the same sampling settings run together)
  --resume                  --out has results already: skip the rows it has, do the rest
  --fps F, --max-frames N   the video rows' sampling when a row gives none (default: the checkpoint's)
  --f32                     load every weight as f32
${GENERATION_USAGE}
The generation options are the defaults of rows without their own "sampling".`;

const clock = (s: number) => (Number.isFinite(s) ? `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, '0')}` : '?');

/** Progress on stderr: one line rewritten in place on a terminal, else a line every few seconds. */
function progressPrinter(io: CliIo): { update: (p: BatchProgress) => void; end: (p: BatchProgress) => void } {
  const t0 = performance.now();
  let last = 0;
  const line = (p: BatchProgress) => {
    const secs = (performance.now() - t0) / 1000;
    const rate = p.done / secs;
    return `batch: ${p.done}/${p.total} rows, ${p.errors} errors · ${rate.toFixed(2)} rows/s · ${(p.completionTokens / secs).toFixed(1)} tokens/s · ETA ${clock((p.total - p.done) / rate)}`;
  };
  return {
    update(p) {
      if (io.stderr.isTTY) io.stderr.write(`\r\x1b[2K${line(p)}`);
      else if (performance.now() - last > 5000) {
        last = performance.now();
        io.stderr.write(line(p) + '\n');
      }
    },
    end(p) {
      io.stderr.write(`${io.stderr.isTTY ? '\r\x1b[2K' : ''}${line(p)}\n`);
    },
  };
}

function inputRows(path: string): BatchRow[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new VlmkitError('E_FILE', `cannot read --input ${path}: ${(e as NodeJS.ErrnoException).code ?? e}; check the path`);
  }
  const rows = parseRows(text, dirname(resolve(path)));
  if (!rows.length) throw new VlmkitError('E_DATA', `--input ${path} has no rows; write one JSON object a line, e.g. {"id": 1, "image": "a.png", "prompt": "What is this?"}`);
  return rows;
}

export async function batch(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parsing(BATCH_USAGE, () => parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: {
      model: { type: 'string' }, input: { type: 'string' }, out: { type: 'string' }, 'batch-size': { type: 'string' }, resume: { type: 'boolean' }, f32: { type: 'boolean' },
      prompt: { type: 'string', multiple: true }, prompts: { type: 'string' }, fps: { type: 'string' }, 'max-frames': { type: 'string' }, ...GENERATION_FLAGS,
    },
  }));
  const askedPrompts = values.prompt !== undefined || values.prompts !== undefined;
  if (values.input !== undefined) {
    if (positionals.length) throw argError(`unexpected argument ${JSON.stringify(positionals[0])}: give --input rows.jsonl or an images folder, not both`);
    if (askedPrompts) throw argError('--prompt and --prompts go with an images folder; the rows of --input carry their own "prompt"');
  } else {
    if (positionals.length !== 1) throw argError(`${positionals.length ? `give one images folder, got ${positionals.length} arguments` : 'give the rows with --input rows.jsonl, or an images folder with --prompt "..."'}\n${BATCH_USAGE}`);
    if (!askedPrompts) throw argError(`give the question to ask of every image in ${positionals[0]} with --prompt "..." (or --prompts file.txt)`);
    if (values.prompt?.some((p) => !p.trim())) throw argError('--prompt is empty; give the question to ask of every image');
  }
  if (!values.out) throw argError(`give the results file with --out results.jsonl\n${BATCH_USAGE}`);
  if (values.input !== undefined && resolve(values.input) === resolve(values.out)) throw argError(`--out ${values.out} is the --input file; give the results a file of their own`);
  const bs = values['batch-size'] ?? '8';
  const batchSize = Number(bs);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 256) throw argError(`--batch-size takes an integer from 1 to 256, got ${JSON.stringify(bs)}`);
  const defaults = { ...generationOptions(values), ...videoOptions(values) };
  const dir = modelDir(values);
  let rows: BatchRow[];
  if (values.input !== undefined) {
    rows = inputRows(values.input);
  } else {
    const prompts = [...(values.prompt ?? []), ...(values.prompts !== undefined ? readPrompts(values.prompts) : [])];
    const f = folderRows(positionals[0]!, prompts);
    rows = f.rows;
    io.stderr.write(`vlmkit batch: ${f.images} images in ${positionals[0]}${f.ignored ? ` (${f.ignored} other files left out)` : ''}, ${prompts.length} prompt${prompts.length === 1 ? '' : 's'} each\n`);
  }
  const model = inspectModel(dir);
  const results = openResults(values.out, values.resume === true);
  try {
    if (results.droppedBytes) io.stderr.write(`vlmkit batch: dropped a torn last line (${results.droppedBytes} bytes) of ${values.out}; its row runs again\n`);
    if (results.done.size) io.stderr.write(`vlmkit batch: ${results.done.size} rows are already in ${values.out} (${results.errors} of them errors); doing the rest\n`);
    status(io, `loading ${dir} ...`);
    const vlm = await loadVlm(model, { dtype: values.f32 ? 'f32' : undefined });
    const ac = new AbortController();
    const onInt = () => ac.abort();
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onInt);
    try {
      const progress = progressPrinter(io);
      const p = await runBatchJob(vlm, rows, results, { batchSize, defaults, signal: ac.signal, onProgress: progress.update });
      progress.end(p);
      if (ac.signal.aborted) {
        io.stderr.write(`vlmkit batch: interrupted; ${values.out} has every finished row, run the same command with --resume to do the rest\n`);
        return 130;
      }
      return 0;
    } finally {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onInt);
      vlm.dispose();
    }
  } finally {
    results.close();
  }
}
