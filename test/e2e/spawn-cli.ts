// Runs the `vlmkit` command as a user does (bin/vlmkit.js on the sources via tsx), from the repository root.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'vlmkit.js');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Spawns `vlmkit args...` with `stdin` piped in (empty by default) and `env` added to the environment, and
 * collects its output and exit code. */
export function vlmkit(args: string[], stdin?: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, VLMKIT_CLI_SOURCE: '1', VLMKIT_DEBUG: '', ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(stdin ?? '');
  });
}
