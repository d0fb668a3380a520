// The web playground's static files (src/serve/playground, copied next to the compiled server by `npm run build`).
// Only these names are served, so no request path can reach any other file. The page may talk to this server
// alone (its Content-Security-Policy): it works with no network, and nothing it shows can load outside content.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { ServerResponse } from 'node:http';
import { ApiError } from './errors.js';

const DIR = new URL('./playground/', import.meta.url);

const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/playground/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/playground/grounding.js': { file: 'grounding.js', type: 'text/javascript; charset=utf-8' },
  '/playground/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'";

/** Whether `path` is one of the playground's files. */
export function isPlaygroundPath(path: string): boolean {
  return Object.hasOwn(FILES, path);
}

export async function sendPlaygroundFile(path: string, res: ServerResponse, head: boolean): Promise<void> {
  const f = FILES[path]!;
  let body: Buffer;
  try {
    body = await readFile(new URL(f.file, DIR));
  } catch {
    throw new ApiError(500, `the playground file ${fileURLToPath(new URL(f.file, DIR))} is missing; rebuild with \`npm run build\` (it copies src/serve/playground)`, { type: 'server_error', code: 'playground_missing' });
  }
  res.writeHead(200, {
    'content-type': f.type, 'content-length': body.length, 'cache-control': 'no-cache',
    'content-security-policy': CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer',
  });
  res.end(head ? undefined : body);
}
