#!/usr/bin/env node
// The `vlmkit` command. Runs the compiled CLI (dist/, built by `npm run build`, which `npm ci` runs via prepare);
// in a development tree without dist/ (or with VLMKIT_CLI_SOURCE=1) it runs the TypeScript sources through tsx.
import { existsSync } from 'node:fs';

const dist = new URL('../dist/cli/main.js', import.meta.url);
let run;
if (existsSync(dist) && !process.env.VLMKIT_CLI_SOURCE) {
  ({ run } = await import(dist.href));
} else {
  try {
    const { register } = await import('tsx/esm/api');
    register();
  } catch {
    process.stderr.write('vlmkit: dist/ is missing and tsx is not installed; run `npm run build` (or `npm ci`)\n');
    process.exit(2);
  }
  ({ run } = await import(new URL('../src/cli/main.ts', import.meta.url).href));
}
process.exitCode = await run(process.argv.slice(2));
