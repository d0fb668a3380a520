// npx tsx scripts/video-rows-as-frames.ts <model dir> <rows.jsonl>[:N] <out dir>: SFT rows with videos, rewritten as
// the rows the trainer makes of them for a checkpoint without a video prompt (Idefics3 / SmolVLM v1, the built-in
// model): each video's sampled frames as PNG pictures after the "Following are the frames ..." line. Training on the
// output gives the same token ids and the same pixels as training on the videos (checked below on the first rows),
// but a batch no longer runs ffprobe and ffmpeg for each clip: on 2 busy cores that cost about 2 s a clip, more
// than the step itself. The frames are decoded once here, three clips at a time. Writes <out>/train.jsonl (atomic)
// and <out>/frames/*.png, and <out>/dataset.json naming the source.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { Processor } from '../src/models/index.js';
import type { RgbImage } from '../src/processing/decode.js';
import { Canvas } from '../src/data/raster.js';
import { writePng } from '../src/eval/draw.js';
import { writeTextFileAtomic } from '../src/io/safetensors-write.js';
import { SftDataset, loadExampleMedia } from '../src/train/data.js';

const [modelDir, spec, outDir] = process.argv.slice(2);
if (!modelDir || !spec || !outDir) throw new Error('usage: npx tsx scripts/video-rows-as-frames.ts <model dir> <rows.jsonl>[:N] <out dir>');
const m = /^(.*?)(?::(\d+))?$/.exec(spec)!;
const file = m[1]!, take = m[2] === undefined ? Infinity : Number(m[2]);
const proc = Processor.fromDir(modelDir);
if (proc.videoConfig) throw new Error(`${modelDir} has a video prompt of its own (SmolVLM2): its videos are not plain pictures`);
const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).slice(0, take);
const out = new Array<string>(lines.length);

type Part = { type: string; path?: string; text?: string };
type Row = { messages: { role: string; content: Part[] | string }[]; videos?: string[]; images?: string[] } & Record<string, unknown>;

async function convert(i: number): Promise<void> {
  const row = JSON.parse(lines[i]!) as Row;
  const base = dirname(resolve(file));
  const videos: string[] = [];
  for (const msg of row.messages) if (Array.isArray(msg.content)) for (const p of msg.content) if (p.type === 'video') videos.push(resolve(base, p.path!));
  if (!videos.length || row.images?.length || row.videos) throw new Error(`${file}:${i + 1}: expected a row whose only media are video parts with a path`);
  const messages = row.messages.map((msg) => ({ ...msg, content: Array.isArray(msg.content) ? msg.content.map((p) => (p.type === 'video' ? { type: 'video' } : p)) : msg.content }));
  const framed = (await proc.withFrames([{ messages: messages as never, videos }]))[0]!;
  const names = (framed.images as RgbImage[]).map((im, k) => {
    const name = `frames/${basename(videos[0]!, '.mp4')}-${i}-${k}.png`;
    const c = new Canvas(im.width, im.height);
    c.data.set(im.data);
    writePng(join(outDir!, name), c);
    return name;
  });
  const lowered = framed.messages!.map((msg) => ({ ...msg, content: Array.isArray(msg.content) ? msg.content.map((p) => (p.type === 'image' ? { type: 'image' } : p)) : msg.content }));
  const { messages: _m, ...rest } = row;
  out[i] = JSON.stringify({ ...rest, messages: lowered, images: names });
}

let next = 0, done = 0;
const t0 = performance.now();
await Promise.all([0, 1, 2].map(async () => {
  while (next < lines.length) {
    await convert(next++);
    if (++done % 100 === 0) process.stderr.write(`${done}/${lines.length} clips, ${((performance.now() - t0) / 1e3).toFixed(0)} s\n`);
  }
}));
writeTextFileAtomic(join(outDir, 'train.jsonl'), out.join('\n') + '\n');

// the same ids and pixels as the video rows, on the first rows
const n = Math.min(8, lines.length);
writeFileSync(join(outDir, '.check-videos.jsonl'), lines.slice(0, n).map((l) => {
  const r = JSON.parse(l) as Row;
  for (const msg of r.messages) if (Array.isArray(msg.content)) for (const p of msg.content) if (p.path) p.path = resolve(dirname(resolve(file)), p.path);
  return JSON.stringify(r);
}).join('\n') + '\n');
writeFileSync(join(outDir, '.check-frames.jsonl'), out.slice(0, n).join('\n') + '\n');
const a = await SftDataset.load(join(outDir, '.check-videos.jsonl'), proc, { assistantOnly: true });
const b = await SftDataset.load(join(outDir, '.check-frames.jsonl'), proc, { assistantOnly: true });
const pa = await loadExampleMedia(proc, a.examples), pb = await loadExampleMedia(proc, b.examples);
for (let k = 0; k < n; k++) {
  if (JSON.stringify(a.examples[k]!.inputIds) !== JSON.stringify(b.examples[k]!.inputIds)) throw new Error(`row ${k + 1}: the frames row's token ids differ from the video row's`);
  const x = pa.images[k]!, y = pb.images[k]!;
  if (x.length !== y.length || x.some((im, j) => Buffer.compare(Buffer.from(im.data), Buffer.from(y[j]!.data)) !== 0)) throw new Error(`row ${k + 1}: the frames row's pixels differ from the video row's`);
}
const src = join(dirname(file), 'dataset.json');
writeTextFileAtomic(join(outDir, 'dataset.json'), JSON.stringify({
  ...(existsSync(src) ? JSON.parse(readFileSync(src, 'utf8')) : {}),
  frames_of: relative(outDir, file), rows: lines.length, note: 'video rows as their sampled frames (scripts/video-rows-as-frames.ts)',
}, null, 2) + '\n');
process.stderr.write(`${lines.length} rows in ${join(outDir, 'train.jsonl')}; the first ${n} give the video rows' token ids and pixels; ${((performance.now() - t0) / 1e3).toFixed(0)} s\n`);
