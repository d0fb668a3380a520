// Zero-shot accuracy of a contrastive model (CLIP / SigLIP folder) on image-text rows: each image is classified
// through the library's classify (the same path as `vlmkit classify`) against every label, and counts as right when
// its best label is its own caption. The labels are the 48 colour x shape captions of `vlmkit data objects`, plus
// any other caption the rows hold. Prints the accuracy (overall, colour, shape) and writes it as JSON with --out.
//
//   node --import tsx scripts/eval-contrastive.ts --model runs/tiny-clip/model --data runs/tiny-clip-data/test.jsonl [--out eval.json]
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadContrastive } from '../src/contrastive-api.js';
import { objectLabels } from '../src/data/objects.js';

const { values } = parseArgs({ options: { model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, limit: { type: 'string' } } });
if (!values.model || !values.data) {
  console.error('usage: eval-contrastive.ts --model DIR --data rows.jsonl [--limit N] [--out eval.json]');
  process.exit(2);
}
const base = dirname(resolve(values.data));
const rows = readFileSync(values.data, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { image: string; text: string })
  .slice(0, values.limit ? Number(values.limit) : undefined);
if (!rows.length) throw new Error(`${values.data} has no rows`);
const labels = [...new Set([...objectLabels(), ...rows.map((r) => r.text)])];
const clip = loadContrastive(values.model);
let right = 0, colour = 0, shape = 0;
try {
  const results = await clip.classify(rows.map((r) => (isAbsolute(r.image) ? r.image : join(base, r.image))), labels, { batchSize: 32 });
  results.forEach((res, i) => {
    const want = rows[i]!.text.split(' '), got = res.scores[0]!.label.split(' ');
    if (res.scores[0]!.label === rows[i]!.text) right++;
    if (got.at(-2) === want.at(-2)) colour++;
    if (got.at(-1) === want.at(-1)) shape++;
  });
} finally {
  clip.dispose();
}
const n = rows.length;
const report = { model: values.model, data: values.data, images: n, labels: labels.length, accuracy: right / n, colour_accuracy: colour / n, shape_accuracy: shape / n, chance: 1 / labels.length };
console.log(`${n} images, ${labels.length} labels: accuracy ${(100 * report.accuracy).toFixed(1)}% (colour ${(100 * report.colour_accuracy).toFixed(1)}%, shape ${(100 * report.shape_accuracy).toFixed(1)}%; chance ${(100 * report.chance).toFixed(1)}%)`);
if (values.out) writeFileSync(values.out, JSON.stringify(report, null, 2) + '\n');
