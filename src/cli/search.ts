// `vlmkit search`: the images of a folder most similar to a text, with a CLIP or SigLIP checkpoint. The folder's
// embeddings live in an index file (docs/search-index.md) that each search brings up to date: new and changed
// images are embedded, deleted ones dropped, unchanged ones read back.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadContrastive } from '../contrastive-api.js';
import { expandHome } from '../io/paths.js';
import { DEFAULT_INDEX_NAME, searchFolder } from '../search/folder.js';
import { argError, parsing } from './args.js';
import { type CliIo, write } from './io.js';

export const SEARCH_USAGE = `usage: vlmkit search --model <dir> "<text>" <folder> [--top K] [--json] [--index FILE] [--rebuild]
  --model DIR        a CLIP or SigLIP checkpoint directory
  --top K            how many images to print (default 10)
  --json             one JSON object: {"query", "folder", "index", "results": [{"path", "score"}], "embedded", "kept", "dropped", "skipped"}
  --index FILE       the index file (default <folder>/${DEFAULT_INDEX_NAME}); made on the first search, updated after
  --rebuild          embed every image again (after changing the model, or when the index is damaged)
output: one "score  path" line per image, best first; score is the cosine similarity of the image and the text.
images: .png .jpg .jpeg .gif .webp anywhere under the folder (hidden files and symbolic links are left out).`;

export async function search(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parsing(SEARCH_USAGE, () => parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: { model: { type: 'string' }, top: { type: 'string' }, json: { type: 'boolean' }, index: { type: 'string' }, rebuild: { type: 'boolean' } },
  }));
  if (!values.model?.trim()) throw argError(`--model DIR is required: the folder of a CLIP or SigLIP checkpoint\n${SEARCH_USAGE}`);
  if (positionals.length !== 2) throw argError(`give the text and the folder: vlmkit search --model DIR "a red car" photos/ (got ${positionals.length} arguments)\n${SEARCH_USAGE}`);
  const [query, folderArg] = positionals as [string, string];
  if (!query.trim()) throw argError('the search text is empty: give what to look for, e.g. "a red car"');
  let top = 10;
  if (values.top !== undefined) {
    top = Number(values.top);
    if (!Number.isInteger(top) || top < 1) throw argError(`--top takes an integer >= 1, got ${JSON.stringify(values.top)}`);
  }
  if (values.index !== undefined && !values.index.trim()) throw argError('--index takes a file path, e.g. --index photos.vlmkit-index');
  const folder = expandHome(folderArg);
  const clip = loadContrastive(values.model);
  try {
    const { hits, stats } = await searchFolder(clip, query, folder, {
      top, rebuild: values.rebuild, index: values.index === undefined ? undefined : expandHome(values.index),
      // a first search of a big folder embeds every image: say so on a terminal, rewriting one line
      onProgress: io.stderr.isTTY ? (done, total) => {
        if (total > 0) io.stderr.write(done >= total ? '\r\x1b[2K' : `\r\x1b[2K\x1b[2membedding images ${done}/${total}\x1b[0m`);
      } : undefined,
    });
    // the reason names the file already (the decoder's message)
    for (const s of stats.skipped) io.stderr.write(`vlmkit: left out of the index (tried again next time): ${s.reason}\n`);
    const results = hits.map((h) => ({ path: join(folder, h.path), score: h.score }));
    if (values.json) {
      await write(io.stdout, JSON.stringify({ query, folder, index: stats.indexPath, results, embedded: stats.embedded, kept: stats.kept, dropped: stats.dropped, skipped: stats.skipped }) + '\n');
    } else {
      await write(io.stdout, results.map((r) => `${r.score.toFixed(4)}  ${r.path}`).join('\n') + (results.length ? '\n' : ''));
    }
    return 0;
  } finally {
    clip.dispose();
  }
}
