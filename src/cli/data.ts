// `vlmkit data`: synthetic datasets for pretraining the built-in model (shapes scenes, charts, motion clips) and
// its tokenizer. Everything is deterministic by seed; the dataset folder appears whole or not at all.
import { parseArgs } from 'node:util';
import { chartsGenerator } from '../data/charts.js';
import { type DatasetSummary, writeDataset } from '../data/dataset.js';
import { objectsGenerator } from '../data/objects.js';
import { shapesGenerator } from '../data/shapes.js';
import { writeMotionDataset } from '../data/motion.js';
import { buildTokenizer, writeTokenizer } from '../data/tokenizer.js';
import type { Generator } from '../data/types.js';
import { argError, parsing } from './args.js';
import { type CliIo, write } from './io.js';
import { mkdirSync } from 'node:fs';

export const DATA_USAGE = `usage: vlmkit data shapes|charts|objects --n N --out DIR [options]
       vlmkit data motion --n N --out DIR [--seed S] [--size PX] [--force] [--json]
       vlmkit data tokenizer --out DIR [--vocab N] [--json]
  shapes              1-6 objects (circle, square, triangle, star, diamond, hexagon) in 8 colours, with captions,
                      counts, colours, presence, positions, sizes and grounding (location tokens)
  objects             one shape in one colour per image, rows {"image", "text": "a red circle"} for
                      vlmkit train contrastive (48 colour x shape captions; default 64 px)
  charts              bar, line and pie charts with titles and labelled values, ChartQA-style questions
  motion              2-second video clips (made with ffmpeg) of a shape moving left/right/up/down, appearing,
                      disappearing or changing colour, with "What happens in the video?" and its answer;
                      train.jsonl and test.jsonl (20%) in TRL's conversational form with a video part
  tokenizer           (re)build the built-in model's byte-level BPE tokenizer (tokenizer.json, tokenizer_config.json,
                      chat_template.jinja), the same files on every run
  --n N               images in all splits together
  --seed S            seed (default 0); train, validation and test use disjoint streams of it
  --size PX           image side (default 128 for shapes, 256 for charts)
  --questions K       questions (JSONL rows) per image, of different types (default 3)
  --conversation      train split: each image's questions as one multi-turn row (one vision pass per image
                      when training); validation and test keep a row per question
  --weights T=W,...   how often each question type is asked, as a factor on its usual weight, e.g.
                      grounding=3,size=2 (0: never); an image still gets at most one question of a type;
                      shapes' "order" (list the objects from top to bottom, ...), "vertical" (is A above or
                      below B) and "name_box" (each name, then its box) are asked only when named
  --repeat T=N,...    up to N questions of a type per image instead of one, e.g. grounding=3 (each about a
                      different object); --questions may then go up to the sum
  --split A,B,C       fractions for train, validation, test (default 0.8,0.1,0.1)
  --out DIR           output folder: train.jsonl, validation.jsonl, test.jsonl, images/, dataset.json
  --force             replace a non-empty --out
  --vocab N           tokenizer: most ids before the 1024 location tokens (default 2048)
  --json              print a JSON summary on stdout`;

const GENERATORS: Record<string, Generator> = { shapes: shapesGenerator, charts: chartsGenerator, objects: objectsGenerator };

function int(flag: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(x) || x < 0) throw argError(`--${flag} takes a whole number >= 0, got ${JSON.stringify(v)}`);
  return x;
}

function fractions(v: string | undefined): [number, number, number] {
  if (v === undefined) return [0.8, 0.1, 0.1];
  const parts = v.split(',').map((p) => Number(p.trim()));
  if (parts.length !== 3 || parts.some((p) => !Number.isFinite(p) || p < 0) || Math.abs(parts[0]! + parts[1]! + parts[2]! - 1) > 1e-9)
    throw argError(`--split takes three fractions for train,validation,test that sum to 1, e.g. 0.8,0.1,0.1; got ${JSON.stringify(v)}`);
  return parts as [number, number, number];
}

/**
 * "grounding=3,size=2" -> {grounding: 3, size: 2} (--weights, --repeat); the types and numbers are checked with
 * the other options.
 */
function typeNumbers(flag: string, what: string, v: string | undefined): Record<string, number> | undefined {
  if (v === undefined) return undefined;
  const out: Record<string, number> = {};
  for (const part of v.split(',')) {
    const m = /^\s*([a-z_]+)\s*=\s*([^,]+?)\s*$/.exec(part);
    const w = m ? Number(m[2]) : NaN;
    if (!m || m[2]!.trim() === '' || !Number.isFinite(w)) throw argError(`--${flag} takes type=${what} pairs separated by commas, e.g. grounding=3,size=2; got ${JSON.stringify(v)}`);
    if (m[1]! in out) throw argError(`--${flag} names ${m[1]} twice; give each question type once`);
    out[m[1]!] = w;
  }
  return out;
}

function summaryText(out: string, s: DatasetSummary, seconds: number): string {
  const splits = Object.entries(s.splits).map(([k, v]) => `${k} ${v.images} images / ${v.rows} rows`).join(', ');
  return `wrote ${s.generator} dataset to ${out} in ${seconds.toFixed(1)} s: ${splits}\n`;
}

export async function data(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parsing(DATA_USAGE, () =>
    parseArgs({
      args: argv,
      options: {
        n: { type: 'string' },
        seed: { type: 'string' },
        size: { type: 'string' },
        questions: { type: 'string' },
        split: { type: 'string' },
        weights: { type: 'string' },
        repeat: { type: 'string' },
        conversation: { type: 'boolean' },
        out: { type: 'string' },
        force: { type: 'boolean' },
        vocab: { type: 'string' },
        json: { type: 'boolean' },
      },
      allowPositionals: true,
      strict: true,
    }),
  );
  const what = positionals[0];
  if (positionals.length !== 1 || !what || !(what in GENERATORS || what === 'tokenizer' || what === 'motion'))
    throw argError(`say what to make: vlmkit data shapes|charts|objects|motion|tokenizer (got ${JSON.stringify(positionals.join(' '))})\n${DATA_USAGE}`);
  if (!values.out) throw argError(`--out <dir> is required: where to write the ${what === 'tokenizer' ? 'tokenizer files' : 'dataset'}\n${DATA_USAGE}`);
  for (const flag of ['weights', 'repeat'] as const)
    if (values[flag] !== undefined && (what === 'tokenizer' || what === 'motion' || GENERATORS[what]!.pairs))
      throw argError(`--${flag} is for the question datasets (shapes, charts); ${what} asks no choice of questions`);
  const t0 = Date.now();

  if (what === 'tokenizer') {
    const built = buildTokenizer({ baseVocab: int('vocab', values.vocab, 2048) });
    mkdirSync(values.out, { recursive: true });
    const files = writeTokenizer(values.out, built);
    const summary = { out: values.out, files, vocab_size: built.vocabSize, merges: built.merges };
    await write(io.stdout, values.json ? JSON.stringify(summary) + '\n' : `wrote ${files.join(', ')} to ${values.out}: ${built.vocabSize} tokens (${built.merges} merges)\n`);
    return 0;
  }

  if (what === 'motion') {
    if (values.n === undefined) throw argError(`--n N is required: how many clips to generate\n${DATA_USAGE}`);
    const progress = (done: number, total: number) => {
      if (io.stderr.isTTY) io.stderr.write(done === total ? '\r\x1b[2K' : `\r\x1b[2Kmotion: ${done}/${total} clips`);
    };
    const s = writeMotionDataset(values.out, { n: int('n', values.n, 0), seed: int('seed', values.seed, 0), size: int('size', values.size, 64), progress }, values.force === true);
    const seconds = (Date.now() - t0) / 1000;
    await write(io.stdout, values.json ? JSON.stringify({ out: values.out, seconds, ...s }) + '\n' : `wrote motion dataset to ${values.out} in ${seconds.toFixed(1)} s: train ${s.splits.train.clips} clips, test ${s.splits.test.clips} clips\n`);
    return 0;
  }

  const gen = GENERATORS[what]!;
  if (values.n === undefined) throw argError(`--n N is required: how many images to generate\n${DATA_USAGE}`);
  const n = int('n', values.n, 0);
  // progress: a line rewritten in place on a terminal, a line every 10% otherwise (for logs of long runs)
  let lastTenth = 0;
  const progress = (done: number, total: number) => {
    if (io.stderr.isTTY) {
      if (done % 50 === 0 || done === total) io.stderr.write(done === total ? '\r\x1b[2K' : `\r\x1b[2K${gen.name}: ${done}/${total} images`);
    } else if (total >= 1000) {
      const tenth = Math.floor((done * 10) / total);
      if (tenth > lastTenth) {
        lastTenth = tenth;
        io.stderr.write(`${gen.name}: ${done}/${total} images\n`);
      }
    }
  };
  const summary = writeDataset(
    gen,
    values.out,
    {
      n,
      seed: int('seed', values.seed, 0),
      size: int('size', values.size, gen.defaultSize),
      questions: int('questions', values.questions, Math.min(3, gen.categories.length)),
      conversation: values.conversation === true,
      weights: typeNumbers('weights', 'factor', values.weights),
      repeat: typeNumbers('repeat', 'count', values.repeat),
      split: fractions(values.split),
      progress,
    },
    values.force === true,
  );
  const seconds = (Date.now() - t0) / 1000;
  await write(io.stdout, values.json ? JSON.stringify({ out: values.out, seconds, ...summary }) + '\n' : summaryText(values.out, summary, seconds));
  return 0;
}
