#!/usr/bin/env node
// Part of `npm run build`: tsc compiles only TypeScript, so the web playground's static files
// (src/serve/playground) are copied next to the compiled server, where dist/serve/playground.js looks for them.
import { cpSync } from 'node:fs';

const root = new URL('..', import.meta.url);
cpSync(new URL('src/serve/playground/', root), new URL('dist/serve/playground/', root), { recursive: true });
