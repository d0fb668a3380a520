// `vlmkit embed`: image and text embeddings of a CLIP or SigLIP checkpoint as JSON lines, one per input:
// {"kind": "image" | "text", "input": <path or text>, "embedding": [...]} (L2-normalised, the model's own space).
// With --npy FILE the vectors go to a NumPy [N, D] float32 file instead, and each JSON line names its row.
import { parseArgs } from 'node:util';
import { loadContrastive } from '../contrastive-api.js';
import { writeFileAtomic } from '../io/safetensors-write.js';
import { expandHome } from '../io/paths.js';
import { writeSync } from 'node:fs';
import { writeNpyRows } from '../io/npy.js';
import { argError, parsing } from './args.js';
import { type CliIo, write } from './io.js';

export const EMBED_USAGE = `usage: vlmkit embed --model <dir> [--text TEXT]... [--out FILE] [--npy FILE] [<image>...]
  --model DIR        a CLIP or SigLIP checkpoint directory
  --text TEXT        a text to embed (repeatable)
  --out FILE         write the JSON lines to FILE (written whole, then renamed into place) instead of stdout
  --npy FILE         write the embeddings as a NumPy .npy float32 array [N, D] (np.load reads it), rows in the
                     order of the JSON lines, which then give {"kind", "input", "row"} instead of the numbers
output: one JSON object per input, images first: {"kind": "image"|"text", "input", "embedding": [numbers]}`;

export async function embed(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parsing(EMBED_USAGE, () => parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: { model: { type: 'string' }, text: { type: 'string', multiple: true }, out: { type: 'string' }, npy: { type: 'string' } },
  }));
  if (!values.model?.trim()) throw argError(`--model DIR is required: the folder of a CLIP or SigLIP checkpoint\n${EMBED_USAGE}`);
  const texts = values.text ?? [];
  if (positionals.length === 0 && texts.length === 0) throw argError(`nothing to embed: give image paths and/or --text TEXT\n${EMBED_USAGE}`);
  if (values.out !== undefined && !values.out.trim()) throw argError('--out takes a file path');
  if (values.npy !== undefined && !values.npy.trim()) throw argError('--npy takes a file path, e.g. --npy embeddings.npy');
  const clip = loadContrastive(values.model);
  try {
    const items: { kind: 'image' | 'text'; input: string; embedding: Float32Array }[] = [];
    if (positionals.length) (await clip.embedImages(positionals)).forEach((e, i) => items.push({ kind: 'image', input: positionals[i]!, embedding: e }));
    if (texts.length) clip.embedTexts(texts).forEach((e, i) => items.push({ kind: 'text', input: texts[i]!, embedding: e }));
    const npy = values.npy;
    const lines = items.map((x, row) => JSON.stringify(npy === undefined ? { kind: x.kind, input: x.input, embedding: Array.from(x.embedding) } : { kind: x.kind, input: x.input, row }));
    if (npy !== undefined) writeNpyRows(expandHome(npy), items.map((x) => x.embedding));
    const body = lines.join('\n') + '\n';
    if (values.out !== undefined) writeFileAtomic(expandHome(values.out), (fd) => { writeSync(fd, body); });
    else await write(io.stdout, body);
    return 0;
  } finally {
    clip.dispose();
  }
}
