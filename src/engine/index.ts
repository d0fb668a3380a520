// The engine's public surface: tensors, ops, autograd, memory scopes, backends.
export { Tensor } from './tensor.js';
export type { GradNode } from './tensor.js';
export type { DType, TypedArray } from './dtype.js';
export { bf16ToF32, f32ToBf16, f16ToF32, f32ToF16 } from './dtype.js';
export { backward, noGrad, noGradAsync, isGradEnabled, withGrad } from './autograd.js';
export { checkpoint } from './recompute.js';
export { tidy, tidyAsync, tidyUnless, keep } from './scope.js';
export { storageStats } from './storage.js';
export type { Backend, AttentionOptions, AdamWOptions, UnaryOp, BinaryOp, ReduceOp } from './backend/backend.js';
export { referenceBackend } from './backend/reference/index.js';
export { defaultBackend, setDefaultBackend, getBackend, nativeBackend } from './backend/registry.js';
export { loadNativeBackend, nativeThreads, setNativeThreads, nativeIsa, nativeIsas, setNativeIsa, type NativeIsa, emptyCache, warmCaches, setCacheWarming } from './backend/native/index.js';
export * from './ops/index.js';
export * from './quant/index.js';
