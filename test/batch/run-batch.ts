// Runs `vlmkit batch` as a user does, optionally stopping it part way, for the batch tests.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../e2e/spawn-cli.js';

const BIN = join(ROOT, 'bin', 'vlmkit.js');

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs `vlmkit batch`; `stopWhen` (checked every 50 ms) sends `stopWith` once it holds. */
export function batchCli(model: string, args: string[], stop?: { when: () => boolean; signal: NodeJS.Signals }): Promise<Run> {
  const p = spawn(process.execPath, [BIN, 'batch', '--model', model, ...args], { cwd: ROOT, env: { ...process.env, VLMKIT_CLI_SOURCE: '1', VLMKIT_DEBUG: '' } });
  let stderr = '';
  p.stderr.on('data', (d) => (stderr += d));
  let timer: NodeJS.Timeout | undefined;
  if (stop) {
    timer = setInterval(() => {
      if (stop.when()) {
        clearInterval(timer);
        p.kill(stop.signal);
      }
    }, 50);
  }
  return new Promise((resolve) => p.on('close', (code, signal) => {
    clearInterval(timer);
    resolve({ code, signal, stderr });
  }));
}

export const lineCount = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').length - 1 : 0);
