// Where the CLI reads and writes (process streams by default; tests may pass their own).
import type { Readable, Writable } from 'node:stream';

export interface CliIo {
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  stdin: Readable & { isTTY?: boolean };
}

export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };
}

/** Writes and waits until the chunk is flushed (so output is complete before the process exits). */
export function write(w: Writable, s: string): Promise<void> {
  return new Promise((resolve) => {
    if (!s) return resolve();
    w.write(s, () => resolve());
  });
}

/** A status line on a terminal's stderr (nothing when stderr is not a TTY). */
export function status(io: CliIo, s: string): void {
  if (io.stderr.isTTY) io.stderr.write(`\x1b[2m${s}\x1b[0m\n`);
}

/**
 * Progress of the image encoding on a terminal's stderr, one line rewritten in place and cleared when the last
 * tile is done (nothing when stderr is not a TTY): a 17-tile photo takes half a minute before the first word.
 */
export function tileProgress(io: CliIo): ((done: number, total: number) => void) | undefined {
  if (!io.stderr.isTTY) return undefined;
  return (done, total) => {
    io.stderr.write(done >= total ? '\r\x1b[2K' : `\r\x1b[2K\x1b[2mencoding image tiles ${done}/${total}\x1b[0m`);
  };
}

/** Progress of a video's frame decoding on a terminal's stderr, like tileProgress (nothing when not a TTY). */
export function frameProgress(io: CliIo): ((done: number, total: number, path: string) => void) | undefined {
  if (!io.stderr.isTTY) return undefined;
  return (done, total, path) => {
    io.stderr.write(done >= total ? '\r\x1b[2K' : `\r\x1b[2K\x1b[2mdecoding ${path}: frame ${done}/${total}\x1b[0m`);
  };
}
