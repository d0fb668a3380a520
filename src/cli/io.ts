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
