// `vlmkit embed`: image and text embeddings of a CLIP or SigLIP checkpoint as JSON lines, one per input:
// {"kind": "image" | "text", "input": <path or text>, "embedding": [...]} (L2-normalised, the model's own space).
import { parseArgs } from 'node:util';
import { loadContrastive } from '../contrastive-api.js';
import { writeFileAtomic } from '../io/safetensors-write.js';
import { expandHome } from '../io/paths.js';
import { writeSync } from 'node:fs';
import { argError, parsing } from './args.js';
import { type CliIo, write } from './io.js';

export const EMBED_USAGE = `usage: vlmkit embed --model <dir> [--text TEXT]... [--out FILE] [<image>...]
  --model DIR        a CLIP or SigLIP checkpoint directory
  --text TEXT        a text to embed (repeatable)
  --out FILE         write the JSON lines to FILE (written whole, then renamed into place) instead of stdout
output: one JSON object per input, images first: {"kind": "image"|"text", "input", "embedding": [numbers]}`;

export async function embed(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parsing(EMBED_USAGE, () => parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: { model: { type: 'string' }, text: { type: 'string', multiple: true }, out: { type: 'string' } },
  }));
  if (!values.model?.trim()) throw argError(`--model DIR is required: the folder of a CLIP or SigLIP checkpoint\n${EMBED_USAGE}`);
  const texts = values.text ?? [];
  if (positionals.length === 0 && texts.length === 0) throw argError(`nothing to embed: give image paths and/or --text TEXT\n${EMBED_USAGE}`);
  if (values.out !== undefined && !values.out.trim()) throw argError('--out takes a file path');
  const clip = loadContrastive(values.model);
  try {
    const lines: string[] = [];
    if (positionals.length) (await clip.embedImages(positionals)).forEach((e, i) => lines.push(JSON.stringify({ kind: 'image', input: positionals[i], embedding: Array.from(e) })));
    if (texts.length) clip.embedTexts(texts).forEach((e, i) => lines.push(JSON.stringify({ kind: 'text', input: texts[i], embedding: Array.from(e) })));
    const body = lines.join('\n') + '\n';
    if (values.out !== undefined) writeFileAtomic(expandHome(values.out), (fd) => { writeSync(fd, body); });
    else await write(io.stdout, body);
    return 0;
  } finally {
    clip.dispose();
  }
}
