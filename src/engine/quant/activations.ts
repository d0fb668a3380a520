// Whether a product with a block-quantized weight may round its activations to 8 bits: the integer decode
// kernels (native/kernels/qdot.h), as llama.cpp runs Q8_0/Q4_0. They serve inference only, where no graph is
// recorded: a product under gradient tracking (training, gradient checks) and gradient checkpointing's forward
// (which must equal its recomputation) keep the product with the dequantized weight to f32 rounding, whose
// gradient is the one the backward computes. The native backend takes them for up to 8 rows (decode); the
// reference backend is always the exact product. docs/quantization.md states the error bound.
import { isGradEnabled } from '../autograd.js';

let enabled = true;
let exactDepth = 0;

/** Whether a quantized product issued now may round its activations to 8 bits. */
export function int8ActivationsNow(): boolean {
  return enabled && exactDepth === 0 && !isGradEnabled();
}

/** Turns the 8-bit-activation decode kernels on or off for the process (on by default); returns the setting before. */
export function setInt8Activations(on: boolean): boolean {
  const before = enabled;
  enabled = on;
  return before;
}

/** Runs fn with every quantized product exact (the product with the dequantized weight). */
export function withExactActivations<T>(fn: () => T): T {
  exactDepth++;
  try {
    return fn();
  } finally {
    exactDepth--;
  }
}
