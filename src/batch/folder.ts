// A folder of images as batch rows (`vlmkit batch --prompt "..." photos/`): every image file under it, sorted by
// its '/'-separated relative path, which is the row's id; with several prompts each image gets one row per
// prompt, id "<path>#<k>" (k from 1, in the prompts' order), all of an image's rows next to each other. The rows
// are the ones an --input file {"id", "image", "prompt"} of the same images would give, so both jobs answer alike
// and a resumed folder job skips what the results already have.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { VlmkitError } from '../errors.js';
import { listImages } from '../search/folder.js';
import { checkRows, type BatchRow, type RawRow } from './rows.js';

export interface FolderRows {
  rows: BatchRow[];
  images: number;
  /** files (and hidden entries, links) under the folder that are not images, left out */
  ignored: number;
}

/** The rows of every image under `folder`, each asked every prompt. */
export function folderRows(folder: string, prompts: readonly string[]): FolderRows {
  if (!prompts.length) throw new VlmkitError('E_ARGS', `give the question to ask of every image in ${folder} with --prompt "..." (or --prompts file.txt)`);
  let ignored = 0;
  const files = listImages(folder, () => ignored++);
  if (!files.length) throw new VlmkitError('E_ARGS', `no images (.png, .jpg, .jpeg, .gif, .webp) under ${folder}; give a folder that holds some`);
  const raw: RawRow[] = [];
  for (const f of files) {
    const image = resolve(join(folder, f.path));
    prompts.forEach((prompt, k) => raw.push({ line: raw.length + 1, value: { id: prompts.length === 1 ? f.path : `${f.path}#${k + 1}`, image, prompt } }));
  }
  return { rows: checkRows(raw, folder), images: files.length, ignored };
}

/** The prompts of a --prompts file: one a line, blank lines skipped. */
export function readPrompts(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new VlmkitError('E_FILE', `cannot read --prompts ${path}: ${(e as NodeJS.ErrnoException).code ?? e}; check the path`);
  }
  const prompts = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  if (!prompts.length) throw new VlmkitError('E_DATA', `--prompts ${path} has no prompts; write one question a line`);
  return prompts;
}
