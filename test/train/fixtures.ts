// A small SFT dataset for the trainer tests: rows over the reference images (copied next to the JSONL, so the
// paths are relative), single- and multi-turn, both TRL forms.
import { copyFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REF = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'reference');
export const TINY = join(REF, 'tiny-idefics3');

const IMAGES = ['wide_90x150.png', 'square_64x64.png', 'tall_200x70.png', 'small_20x24.png', 'gray_33x47.png'];

const user = (q: string, images = 1) => ({ role: 'user', content: [...Array.from({ length: images }, () => ({ type: 'image' })), { type: 'text', text: q }] });
const assistant = (a: string) => ({ role: 'assistant', content: a });

/** Writes train.jsonl (n rows) and val.jsonl (3 rows) into dir with the images they use; returns the paths. */
export function writeSftData(dir: string, n = 8): { train: string; val: string } {
  for (const im of IMAGES) copyFileSync(join(REF, 'images', im), join(dir, im));
  const rows: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const im = IMAGES[i % IMAGES.length]!;
    const kind = i % 4;
    if (kind === 0) rows.push({ messages: [user('What is in this image?'), assistant(`Shapes, number ${i}.`)], images: [im] });
    else if (kind === 1) rows.push({ prompt: [user('Describe it briefly.')], completion: [assistant(`A picture ${i}.`)], images: [im] });
    else if (kind === 2) rows.push({ messages: [user('Color?'), assistant('Red.'), { role: 'user', content: 'And the shape?' }, assistant(`Circle ${i}.`)], images: [im] });
    else rows.push({ messages: [{ role: 'user', content: `Say ${i}.` }, assistant(`${i}.`)] });
  }
  const val = [
    { messages: [user('What is in this image?'), assistant('Shapes, number 1.')], images: ['wide_90x150.png'] },
    { messages: [user('Color?'), assistant('Red.')], images: ['square_64x64.png'] },
    { messages: [{ role: 'user', content: 'Say 3.' }, assistant('3.')] },
  ];
  const train = join(dir, 'train.jsonl');
  const valPath = join(dir, 'val.jsonl');
  writeFileSync(train, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  writeFileSync(valPath, val.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return { train, val: valPath };
}
