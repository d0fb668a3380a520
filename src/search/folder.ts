// Search over a folder of images: the index (index-file.ts) is brought up to date first, embedding only the
// images that are new or whose size or mtime changed, dropping the deleted ones, then the query text is embedded
// and scored against every stored image embedding.
//
//   const clip = loadContrastive('clip-vit-base-patch32');
//   const { hits } = await searchFolder(clip, 'a red car', 'photos/', { top: 5 });
//   // hits: [{ path: 'cars/red.jpg', score: 0.31 }, ...] (paths relative to the folder, best first)
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ContrastiveHandle } from '../contrastive-api.js';
import { VlmkitError } from '../errors.js';
import { type RgbImage, decodeImage, readImageFile } from '../processing/decode.js';
import { type IndexedFile, SearchIndex, type SearchHit } from './index-file.js';
import { modelIdentity } from './model-id.js';

/** The index file a folder gets when no other is named (hidden, so the folder walk never lists it). */
export const DEFAULT_INDEX_NAME = '.vlmkit-index';
const IMAGE_EXT = /\.(png|jpe?g|gif|webp)$/i;

export interface UpdateIndexOptions {
  /** the index file (default <folder>/.vlmkit-index) */
  index?: string;
  /** ignore an existing index file (damaged, another model's) and embed every image again */
  rebuild?: boolean;
  /** images embedded per forward (default 16) */
  batchSize?: number;
  /** told how many images will be embedded, then after each batch */
  onProgress?: (done: number, total: number) => void;
}

export interface UpdateStats {
  indexPath: string;
  /** images embedded in this update (new or changed) */
  embedded: number;
  /** images whose stored embedding was kept (unchanged) */
  kept: number;
  /** entries dropped because their file is gone (or is no longer an image) */
  dropped: number;
  /** images that could not be read or decoded (left out, tried again next time), with why */
  skipped: { path: string; reason: string }[];
}

export interface SearchOptions extends UpdateIndexOptions {
  /** how many results (default 10) */
  top?: number;
}

/** Every image file under `folder` (png, jpeg, gif, webp by extension), as sorted '/'-separated relative paths with
 * their size and mtime. Hidden entries and symbolic links are not followed (no cycles, no escaping the folder);
 * `onSkip` hears of each entry left out that way and of every other file (a hidden folder counts once). */
export function listImages(folder: string, onSkip?: (relPath: string) => void): IndexedFile[] {
  const out: IndexedFile[] = [];
  const walk = (dir: string, rel: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (e) {
      throw new VlmkitError('E_ARGS', `cannot read the folder ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; give a readable folder of images`);
    }
    for (const name of names) {
      const p = join(dir, name), r = rel ? `${rel}/${name}` : name;
      if (name.startsWith('.')) {
        onSkip?.(r);
        continue;
      }
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue; // removed while we walk
      }
      if (st.isDirectory()) walk(p, r);
      else if (st.isFile() && IMAGE_EXT.test(name)) out.push({ path: r, mtimeMs: st.mtimeMs, size: st.size });
      else onSkip?.(r);
    }
  };
  let root;
  try {
    root = lstatSync(folder);
  } catch {
    throw new VlmkitError('E_ARGS', `the folder ${folder} does not exist; give a folder of images`);
  }
  if (!root.isDirectory()) throw new VlmkitError('E_ARGS', `${folder} is not a folder; give a folder of images (png, jpeg, gif, webp)`);
  walk(folder, '');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The index file used for `folder` (the option, else the default name inside it). */
export function indexPathFor(folder: string, index?: string): string {
  return index ?? join(folder, DEFAULT_INDEX_NAME);
}

/**
 * Brings the folder's index up to date with its images and writes it (only when something changed). An existing
 * index of another model is refused (VlmkitError E_INDEX naming the file and --rebuild), a damaged one too.
 */
export async function updateIndex(clip: ContrastiveHandle, folder: string, o: UpdateIndexOptions = {}): Promise<{ index: SearchIndex; stats: UpdateStats }> {
  const indexPath = indexPathFor(folder, o.index);
  const model = modelIdentity(clip.dir, clip.family);
  const files = listImages(folder);
  if (files.length === 0) throw new VlmkitError('E_ARGS', `no images (.png, .jpg, .jpeg, .gif, .webp) under ${folder}; give a folder that holds some`);
  let old: SearchIndex | null = null;
  if (!o.rebuild && existsSync(indexPath)) {
    old = SearchIndex.read(indexPath);
    if (old.model.id !== model.id || old.dim !== clip.dim) {
      throw new VlmkitError('E_INDEX', `${indexPath} was built with another model (${old.model.family} ${old.model.id.slice(0, 12)}, dim ${old.dim}; this is ${model.family} ${model.id.slice(0, 12)}, dim ${clip.dim}): run with --rebuild to re-embed the folder with this model, or give another --index FILE`);
    }
  }
  const before = new Map<string, number>();
  old?.files.forEach((f, i) => before.set(f.path, i));
  const stale: number[] = []; // positions in `files` to embed
  let kept = 0;
  files.forEach((f, i) => {
    const j = before.get(f.path);
    const was = j === undefined ? undefined : old!.files[j]!;
    if (was && was.mtimeMs === f.mtimeMs && was.size === f.size) kept++;
    else stale.push(i);
  });
  const present = new Set(files.map((f) => f.path));
  const dropped = old ? old.files.filter((f) => !present.has(f.path)).length : 0;

  const fresh = new Map<number, Float32Array>();
  const skipped: { path: string; reason: string }[] = [];
  const batch = o.batchSize ?? 16;
  if (!Number.isInteger(batch) || batch < 1) throw new VlmkitError('E_ARGS', `batchSize must be an integer >= 1, got ${batch}`);
  o.onProgress?.(0, stale.length);
  for (let s = 0; s < stale.length; s += batch) {
    const part = stale.slice(s, s + batch);
    const imgs: RgbImage[] = [], at: number[] = [];
    for (const i of part) {
      const f = files[i]!;
      try {
        imgs.push(await decodeImage(await readImageFile(join(folder, f.path)), join(folder, f.path)));
        at.push(i);
      } catch (e) {
        if (!(e instanceof VlmkitError)) throw e;
        skipped.push({ path: f.path, reason: e.message.split('\n')[0]! });
      }
    }
    if (imgs.length) (await clip.embedImages(imgs, { batchSize: batch })).forEach((v, k) => fresh.set(at[k]!, v));
    o.onProgress?.(Math.min(s + batch, stale.length), stale.length);
  }

  const skip = new Set(skipped.map((x) => x.path));
  const keptFiles = files.filter((f) => !skip.has(f.path));
  const dim = clip.dim;
  const emb = new Float32Array(keptFiles.length * dim);
  let r = 0;
  files.forEach((f, i) => {
    if (skip.has(f.path)) return;
    const v = fresh.get(i) ?? old!.row(before.get(f.path)!);
    emb.set(v, r * dim);
    r++;
  });
  const index = new SearchIndex(model, dim, keptFiles, emb);
  const embedded = fresh.size;
  // an unchanged folder leaves the file alone
  if (embedded > 0 || dropped > 0 || !old || old.count !== index.count) index.write(indexPath);
  return { index, stats: { indexPath, embedded, kept, dropped, skipped } };
}

/** Updates the folder's index, then returns the `top` images most similar to the text, best first. */
export async function searchFolder(clip: ContrastiveHandle, query: string, folder: string, o: SearchOptions = {}): Promise<{ hits: SearchHit[]; stats: UpdateStats }> {
  if (!query.trim()) throw new VlmkitError('E_ARGS', 'the search text is empty: give what to look for, e.g. "a red car"');
  const top = o.top ?? 10;
  if (!Number.isInteger(top) || top < 1) throw new VlmkitError('E_ARGS', `top must be an integer >= 1, got ${top}`);
  const { index, stats } = await updateIndex(clip, folder, o);
  const [q] = clip.embedTexts([query]);
  return { hits: index.search(q!, top), stats };
}

