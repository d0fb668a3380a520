// Which backend new tensors are made on. The native backend is the default when the addon loads; the reference
// backend is always there (tests compare against it; it also runs f64 for finite differences).
import type { Backend } from './backend.js';
import { referenceBackend } from './reference/index.js';

let current: Backend | null = null;
let nativeLoaded: Backend | null | undefined;

export function nativeBackend(): Backend | null {
  if (nativeLoaded === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      nativeLoaded = loadNative();
    } catch {
      nativeLoaded = null;
    }
  }
  return nativeLoaded;
}

let loader: (() => Backend) | null = null;
/** backend/native/index.ts registers itself here when imported (keeps the addon import in one folder). */
export function registerNativeLoader(fn: () => Backend): void {
  loader = fn;
}
function loadNative(): Backend {
  if (!loader) throw new Error('native backend not imported');
  return loader();
}

export function defaultBackend(): Backend {
  if (!current) current = nativeBackend() ?? referenceBackend;
  return current;
}

export function setDefaultBackend(b: Backend | 'native' | 'reference'): Backend {
  if (b === 'reference') current = referenceBackend;
  else if (b === 'native') {
    const n = nativeBackend();
    if (!n) throw new Error('vlmkit: the native addon is not built; run `npm install` (it needs g++ and libopenblas-dev)');
    current = n;
  } else current = b;
  return current;
}

export function getBackend(name: 'native' | 'reference'): Backend {
  if (name === 'reference') return referenceBackend;
  const n = nativeBackend();
  if (!n) throw new Error('vlmkit: the native addon is not built; run `npm install` (it needs g++ and libopenblas-dev)');
  return n;
}
