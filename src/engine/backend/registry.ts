// Which backend new tensors are made on. The native backend is the default when the addon loads; the reference
// backend is always there (tests compare against it; it also runs f64 for finite differences). Both are imported
// here, explicitly: whichever engine file an entry point imports, the default is the same (an import-time
// registration let an entry point that skipped backend/native run on the reference backend without a word).
import type { Backend } from './backend.js';
import { loadNativeBackend } from './native/index.js';
import { referenceBackend } from './reference/index.js';

let current: Backend | null = null;
let nativeLoaded: Backend | null | undefined;

export function nativeBackend(): Backend | null {
  if (nativeLoaded === undefined) {
    try {
      nativeLoaded = loadNativeBackend();
    } catch {
      nativeLoaded = null;
    }
  }
  return nativeLoaded;
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
