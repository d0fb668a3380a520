// `vlmkit plot`: a training run's loss curve as a PNG (train loss, its running mean, eval loss), from the run's
// metrics.jsonl. A line that is not JSON (a run killed mid-write) is skipped and counted, never fatal.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { writePng } from '../eval/draw.js';
import { linePlot, lossSeries } from '../eval/plot.js';
import { argError, parsing } from './args.js';
import { type CliIo, write } from './io.js';

export const PLOT_USAGE = `usage: vlmkit plot <run folder or metrics.jsonl> [--out loss.png] [options]
  --out FILE          the PNG to write (default: loss.png beside metrics.jsonl)
  --title TEXT        the title (default: the run folder's name)
  --smooth N          steps in the running mean of the train loss (default 50)
  --log               a logarithmic loss axis
  --json              print {"out": ..., "train_steps": ..., "evals": ...} on stdout`;

/** Files of metrics.jsonl are read whole: refuse one so large that it cannot be a run's metrics. */
const MAX_BYTES = 512 * 1024 * 1024;

export async function plot(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parsing(PLOT_USAGE, () =>
    parseArgs({
      args: argv,
      options: { out: { type: 'string' }, title: { type: 'string' }, smooth: { type: 'string' }, log: { type: 'boolean' }, json: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    }),
  );
  if (positionals.length !== 1) throw argError(`give one run folder or metrics.jsonl\n${PLOT_USAGE}`);
  let file = positionals[0]!;
  if (!file.endsWith('.jsonl')) file = `${file.replace(/\/+$/, '')}/metrics.jsonl`;
  const smooth = values.smooth === undefined ? 50 : Number(values.smooth);
  if (!Number.isInteger(smooth) || smooth < 1) throw argError(`--smooth takes a whole number >= 1, got ${JSON.stringify(values.smooth)}`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw argError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}; give a training run's folder or its metrics.jsonl`);
  }
  if (text.length > MAX_BYTES) throw argError(`${file} is over ${MAX_BYTES} bytes; not a training run's metrics file`);
  const lines: Record<string, unknown>[] = [];
  let bad = 0;
  for (const l of text.split('\n')) {
    if (!l.trim()) continue;
    try {
      const j = JSON.parse(l) as unknown;
      if (j && typeof j === 'object' && !Array.isArray(j)) lines.push(j as Record<string, unknown>);
      else bad++;
    } catch {
      bad++;
    }
  }
  const series = lossSeries(lines, smooth);
  if (series.length === 0) throw argError(`${file} has no train or eval records; is it a vlmkit training run's metrics.jsonl?`);
  const dir = file.slice(0, Math.max(0, file.lastIndexOf('/'))) || '.';
  const out = values.out ?? `${dir}/loss.png`;
  const title = values.title ?? dir.split('/').filter(Boolean).pop() ?? 'run';
  writePng(out, linePlot(series, { title, xLabel: 'step', yLabel: 'loss', logY: values.log === true }));
  const trainSteps = series.find((s) => s.name === 'train loss')?.points.length ?? 0;
  const evals = series.find((s) => s.name === 'eval loss')?.points.length ?? 0;
  if (values.json) await write(io.stdout, JSON.stringify({ out, train_steps: trainSteps, evals, skipped_lines: bad }) + '\n');
  else await write(io.stdout, `wrote ${out} (${trainSteps} steps, ${evals} evaluations${bad ? `, ${bad} unreadable lines skipped` : ''})\n`);
  return 0;
}
