// The native backend: kernels in the C++ addon (OpenBLAS sgemm + our AVX2 code). The backend registry imports
// loadNativeBackend from here directly (no registration at import time); nothing outside backend/native touches
// the addon.
import type { Backend } from '../backend.js';
import type { Tensor } from '../../tensor.js';
import type { TypedArray } from '../../dtype.js';
import { CachingAllocator } from './cache.js';
import { loadAddon } from './addon.js';
import { attentionKernels } from './attention.js';
import { elementwiseKernels } from './elementwise.js';
import { decodeKernels } from './decode.js';
import { fusedKernels } from './fused.js';
import { layoutKernels } from './layout.js';
import { matmulKernels } from './matmul.js';
import { normKernels } from './norm.js';
import { qmatmulKernels } from './qmatmul.js';
import { optimKernels } from './optim.js';
import { reduceKernels } from './reduce.js';
import { ropeKernels } from './rope.js';
import { rowKernels } from './rows.js';
import { softmaxKernels } from './softmax.js';

let instance: Backend | null = null;
let allocator: CachingAllocator | null = null;

/** Loads the addon (throws if it is not built) and returns the backend. */
export function loadNativeBackend(): Backend {
  if (instance) return instance;
  const addon = loadAddon();
  allocator = new CachingAllocator({
    alloc: (bytes, zero) => addon.alloc(bytes, zero) as ArrayBuffer,
    free: (buffer) => void addon.free(buffer, true),
  });
  instance = {
    name: 'native',
    allocator,
    ...layoutKernels,
    ...elementwiseKernels,
    ...reduceKernels,
    ...matmulKernels,
    ...qmatmulKernels,
    ...softmaxKernels,
    ...normKernels,
    ...ropeKernels,
    ...attentionKernels,
    ...rowKernels,
    ...optimKernels,
    ...fusedKernels,
    ...decodeKernels,
  };
  return instance;
}

/** Threads in the addon's pool (VLMKIT_THREADS overrides the default of one per core). */
export function nativeThreads(): number {
  return loadAddon().numThreads() as number;
}
export function setNativeThreads(n: number): void {
  loadAddon().setNumThreads(n);
}

/** The instruction sets the native kernels can use on this CPU, widest first ('avx512', 'avx2', 'scalar'). */
export type NativeIsa = 'avx512' | 'avx2' | 'scalar';
const ISA_ORDER: NativeIsa[] = ['avx512', 'avx2', 'scalar'];
export function nativeIsas(): NativeIsa[] {
  const widest = (loadAddon().cpuFeatures() as { widest: NativeIsa }).widest;
  return ISA_ORDER.slice(ISA_ORDER.indexOf(widest));
}
/** The instruction set the native kernels use now (the CPU's widest unless VLMKIT_ISA or setNativeIsa says). */
export function nativeIsa(): NativeIsa {
  return loadAddon().isa() as NativeIsa;
}
/** Makes the native kernels use `isa` (one of nativeIsas()); returns the one in use before. */
export function setNativeIsa(isa: NativeIsa): NativeIsa {
  return loadAddon().setIsa(isa) as NativeIsa;
}

/** Returns the native allocator's cached (released but kept for reuse) buffers to the system. */
export function emptyCache(): void {
  allocator?.emptyCache();
}

let warming = true;

/** Turns idle-time cache warming (warmCaches) on or off; on by default. */
export function setCacheWarming(on: boolean): void {
  warming = on;
}

/**
 * Whether idle workers may read these tensors' memory into the caches: warming is on and each is a buffer of this
 * backend's allocator (freed through the addon, which first drops it from the warming queue).
 */
export function warmable(ts: readonly Tensor[]): boolean {
  return warming && instance !== null && ts.every((t) => t.backend === instance && !t.storage.disposed && t.storage.owned);
}

/**
 * Asks the addon's idle pool workers to read these tensors into the caches (replacing the previous request): the
 * weights the next products will stream, read while the pool would otherwise wait for JavaScript between calls.
 * A hint that never changes a result; tensors of other backends are skipped.
 */
export function warmCaches(ts: readonly Tensor[]): void {
  if (!warming || !instance) return;
  const arrays: TypedArray[] = [];
  for (const t of ts) {
    // only buffers the addon allocated: it forgets them from the queue before freeing them (a wrapped array could
    // be collected by the garbage collector under an idle worker's read)
    if (t.backend !== instance || t.storage.disposed || !t.storage.owned) continue;
    arrays.push(t.storage.data.subarray(t.offset, t.offset + t.size) as TypedArray);
  }
  loadAddon().warmCaches(arrays);
}
