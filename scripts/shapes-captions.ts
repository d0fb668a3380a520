// npx tsx scripts/shapes-captions.ts <shapes dataset folder>: image-caption rows {"image", "text"} for
// `vlmkit train contrastive` from a `vlmkit data shapes` folder made with --questions 10 (every picture then has
// its caption question): captions-train.jsonl, captions-val512.jsonl (the first 512 validation captions) and
// captions-test.jsonl, beside the dataset's own files, so the image paths stay as they are.
import { readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../src/io/safetensors-write.js';

const dir = process.argv[2];
if (!dir) throw new Error('usage: npx tsx scripts/shapes-captions.ts <shapes dataset folder>');
const captions = (split: string) =>
  readFileSync(join(dir, `${split}.jsonl`), 'utf8').split('\n').filter(Boolean)
    .map((l) => JSON.parse(l) as { images: string[]; category: string; answer: string })
    .filter((r) => r.category === 'caption')
    .map((r) => JSON.stringify({ image: r.images[0], text: r.answer }));
const write = (name: string, rows: string[]) => {
  if (rows.length === 0) throw new Error(`${dir}: no caption rows for ${name}; make the data with --questions 10`);
  writeFileAtomic(join(dir, name), (fd) => writeSync(fd, rows.join('\n') + '\n'));
  console.log(`${join(dir, name)}: ${rows.length} rows`);
};
write('captions-train.jsonl', captions('train'));
const val = captions('validation');
write('captions-val512.jsonl', val.slice(0, 512));
write('captions-test.jsonl', captions('test'));
