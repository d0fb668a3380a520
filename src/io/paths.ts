// Paths a user types: `~` and `~/...` mean the home folder, as in a shell. A shell expands them before vlmkit sees
// an argument, but not inside quotes, after `--flag=` in every shell, or in library calls such as
// loadVlm('~/models/x'), where Node's fs would look for a folder literally named "~".
import { homedir } from 'node:os';
import { join } from 'node:path';

export function expandHome(path: string): string {
  if (path === '~') return homedir();
  if (path.startsWith('~/')) return join(homedir(), path.slice(2));
  return path; // `~user/...` is left alone: naming another user's home needs the passwd database
}
