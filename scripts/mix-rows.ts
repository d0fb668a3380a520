// npx tsx scripts/mix-rows.ts <out.jsonl> <rows.jsonl>[:N] [<rows.jsonl>[:N] ...]: one training file from several
// (the built-in model trains on shapes conversations mixed with motion clips). Takes the first N rows of each
// input (all when :N is left out), in the order given; the trainer shuffles by its seed, so order here does not
// matter. Image and video paths are relative to the JSONL that names them, so each is rewritten relative to the
// output's folder. Beside the output, dataset.json says what went in: each input's file, rows taken, and its own
// dataset.json (the generator's command and seed), for the model card. Written atomically.
import { existsSync, mkdirSync, readFileSync, writeSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { writeFileAtomic } from '../src/io/safetensors-write.js';

const [outPath, ...inputs] = process.argv.slice(2);
if (!outPath || !inputs.length) throw new Error('usage: npx tsx scripts/mix-rows.ts <out.jsonl> <rows.jsonl>[:N] ...');

interface Part { type: string; path?: string; video?: string }
interface Row { messages?: { content: Part[] | string }[]; images?: string[]; videos?: string[] }

const out: string[] = [];
const parts: { file: string; rows: number; dataset: unknown }[] = [];
for (const spec of inputs) {
  const m = /^(.*?)(?::(\d+))?$/.exec(spec)!;
  const file = m[1]!, take = m[2] === undefined ? Infinity : Number(m[2]);
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim());
  if (lines.length < take && take !== Infinity) throw new Error(`${file} has ${lines.length} rows, fewer than the ${take} asked for`);
  const move = (p: string) => (isAbsolute(p) ? p : relative(dirname(outPath), join(dirname(file), p)));
  for (const line of lines.slice(0, take)) {
    const row = JSON.parse(line) as Row;
    if (row.images) row.images = row.images.map(move);
    if (row.videos) row.videos = row.videos.map(move);
    for (const msg of row.messages ?? []) {
      if (!Array.isArray(msg.content)) continue;
      for (const part of msg.content) {
        if (part.type !== 'video') continue;
        if (part.path !== undefined) part.path = move(part.path);
        if (part.video !== undefined) part.video = move(part.video);
      }
    }
    out.push(JSON.stringify(row));
  }
  const info = join(dirname(file), 'dataset.json');
  parts.push({ file: relative(dirname(outPath), file), rows: Math.min(lines.length, take), dataset: existsSync(info) ? JSON.parse(readFileSync(info, 'utf8')) : null });
  process.stderr.write(`${file}: ${Math.min(lines.length, take)} rows\n`);
}
mkdirSync(dirname(outPath), { recursive: true }); // a new mix goes in a folder of its own
writeFileAtomic(outPath, (fd) => writeSync(fd, out.map((l) => l + '\n').join('')));
writeFileAtomic(join(dirname(outPath), 'dataset.json'), (fd) => writeSync(fd, JSON.stringify({ generator: 'mix', rows: out.length, parts }, null, 2) + '\n'));
process.stderr.write(`wrote ${out.length} rows to ${outPath}\n`);
