// The only module that loads the compiled addon (build/Release/vlmkit.node, made by node-gyp at npm install).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { VlmkitError } from '../../../errors.js';

// Loose typing on purpose: each family file declares the functions it calls in its own interface.
export type Addon = Record<string, (...args: any[]) => any>;

let addon: Addon | null = null;

export function loadAddon(): Addon {
  if (addon) return addon;
  const require = createRequire(import.meta.url);
  // Walk up from this file (src/engine/backend/native or dist/engine/backend/native) to the package root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    for (const kind of ['Release', 'Debug']) {
      const p = join(dir, 'build', kind, 'vlmkit.node');
      if (existsSync(p)) {
        try {
          addon = require(p) as Addon;
        } catch (e) {
          // the addon refuses to load under an invalid VLMKIT_ISA (its message names the variable and the fix)
          const msg = e instanceof Error ? e.message : String(e);
          if (msg.startsWith('vlmkit: VLMKIT_ISA')) throw new VlmkitError('E_ENV', msg.slice('vlmkit: '.length));
          throw e;
        }
        return addon;
      }
    }
    dir = dirname(dir);
  }
  throw new Error('vlmkit: native addon not found (build/Release/vlmkit.node); run `npm install` or `npx node-gyp rebuild`');
}
