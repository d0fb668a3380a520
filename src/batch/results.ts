// The results file of a batch job: one JSON line per input row, appended and fsync'd batch by batch, so a job
// killed at any moment leaves whole lines behind, plus at most one torn last line. Resuming drops that torn line
// and skips every row the file already has.
import { closeSync, fsyncSync, openSync, readFileSync, statSync, ftruncateSync, writeSync } from 'node:fs';
import { FileFormatError, VlmkitError } from '../errors.js';
import { rowKey, type RowId } from './rows.js';

export interface ResultLine {
  id: RowId;
  /** only on rows the results name by their line (no usable id) */
  line?: number;
  text?: string;
  finish_reason?: string;
  prompt_tokens?: number;
  completion_tokens?: number;
  error?: string;
}

export interface OpenedResults {
  /** the keys (rowKey) of the rows already in the file */
  done: Set<string>;
  /** how many of those are errors */
  errors: number;
  /** bytes of a torn last line that were cut off (0: none) */
  droppedBytes: number;
  append(lines: readonly ResultLine[]): void;
  close(): void;
}

/** The keys already in `text` (a results file cut back to whole lines); a line that is not a result is an error. */
function readDone(path: string, text: string): { done: Set<string>; errors: number } {
  const done = new Set<string>();
  let errors = 0;
  text.split('\n').forEach((raw, i) => {
    if (!raw.trim()) return;
    let r: ResultLine;
    try {
      r = JSON.parse(raw) as ResultLine;
    } catch {
      throw new FileFormatError(`${path}:${i + 1} is not a JSON line, so it is not a vlmkit batch results file; give --out a new file or the one an earlier run of this job wrote`);
    }
    if (!r || typeof r !== 'object' || !('id' in r)) {
      throw new FileFormatError(`${path}:${i + 1} has no "id", so it is not a vlmkit batch results file; give --out a new file or the one an earlier run of this job wrote`);
    }
    done.add(rowKey(r.id, r.line));
    if (r.error !== undefined) errors++;
  });
  return { done, errors };
}

/**
 * Opens `path` for appending. Without `resume` it must not hold results yet (nothing is overwritten); with it,
 * a torn last line is cut off and the rows already there are returned as done.
 */
export function openResults(path: string, resume: boolean): OpenedResults {
  const st = statSync(path, { throwIfNoEntry: false });
  if (st && !st.isFile()) throw new VlmkitError('E_ARGS', `--out ${path} is not a file; give the path of the results JSONL to write`);
  if (st && st.size > 0 && !resume) {
    throw new VlmkitError('E_ARGS', `--out ${path} already has results; pass --resume to skip the rows it has and do the rest, or give a new file`);
  }
  let fd: number;
  try {
    fd = openSync(path, 'a+');
  } catch (e) {
    throw new VlmkitError('E_FILE', `cannot write --out ${path}: ${(e as NodeJS.ErrnoException).code ?? e}; check the folder exists and is writable`);
  }
  let done = new Set<string>();
  let errors = 0;
  let droppedBytes = 0;
  try {
    if (st && st.size > 0) {
      const buf = readFileSync(path);
      const end = buf.lastIndexOf(0x0a) + 1; // after the last whole line
      if (end < buf.length) {
        droppedBytes = buf.length - end;
        ftruncateSync(fd, end);
        fsyncSync(fd);
      }
      ({ done, errors } = readDone(path, buf.subarray(0, end).toString('utf8')));
    }
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return {
    done,
    errors,
    droppedBytes,
    append(lines) {
      if (!lines.length) return;
      const buf = Buffer.from(lines.map((l) => JSON.stringify(l) + '\n').join(''), 'utf8');
      // one write of whole lines, then fsync: a crash later loses nothing written here
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    },
    close() {
      closeSync(fd);
    },
  };
}
