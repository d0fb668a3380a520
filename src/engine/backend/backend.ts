// The contract every backend implements: the kernels, each forward with its backward. Tensors passed in may be
// strided views (a backend makes them contiguous where its kernel needs it); tensors returned are fresh and
// contiguous, owned by the caller. Shapes are already validated by the ops layer (src/engine/ops), so backends
// only compute. backend/reference is the definition of every kernel; backend/native must equal it.
import type { DType } from '../dtype.js';
import type { QuantizedWeight } from '../quant/weight.js';
import type { Allocator } from '../storage.js';
import type { Tensor } from '../tensor.js';

export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'tanh' | 'sigmoid' | 'silu' | 'gelu' | 'gelu_tanh' | 'logsigmoid'
  | 'relu' | 'abs' | 'square';
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum';
export type ReduceOp = 'sum' | 'mean' | 'max' | 'argmax';

export interface AttentionOptions {
  /** mask keys after the query's own position */
  causal: boolean;
  /** multiplies q·k; usually 1/sqrt(D) */
  scale: number;
  /** [B, Tk]: nonzero = attend, zero = padding (any dtype) */
  keyMask?: Tensor | null;
  /** absolute position of query row 0 among the keys for the causal mask; default Tk - Tq (a cache) */
  qOffset?: number;
}

/**
 * One decoder layer of a Llama text stack as Backend.llamaDecode reads it: plain weights [N, K] (all seven tensors
 * of one f32/bf16/f16 dtype, or all block-quantized weights of one format, which are then multiplied on 8-bit
 * activations as quantLinear's int8Acts: the caller checks that they apply), f32 norms, caches.
 */
export interface LlamaDecodeLayer {
  inputNorm: Tensor;
  q: Tensor | QuantizedWeight;
  k: Tensor | QuantizedWeight;
  v: Tensor | QuantizedWeight;
  o: Tensor | QuantizedWeight;
  postNorm: Tensor;
  gate: Tensor | QuantizedWeight;
  up: Tensor | QuantizedWeight;
  down: Tensor | QuantizedWeight;
  /** [B, Hkv, L, D] f32 contiguous */
  kCache: Tensor;
  vCache: Tensor;
}

export interface LlamaDecodeStack {
  layers: readonly LlamaDecodeLayer[];
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  /** multiplies q·k in attention */
  scale: number;
  /** positions cached so far: this step's keys and values go to position `past` of every cache */
  past: number;
  /** [B, 1] rotary positions (i32/i64) */
  positions: Tensor;
  /** [B, past + 1]: nonzero = attend; null = every key attends */
  keyMask: Tensor | null;
  /** [headDim / 2] */
  invFreq: Tensor;
  finalNorm: Tensor;
  /** read into the caches by idle workers during the last layer (the lm_head the caller applies next) */
  next?: Tensor | null;
}

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count after this update, for bias correction */
  step: number;
}

export interface Backend {
  readonly name: 'reference' | 'native';
  readonly allocator: Allocator;

  // ---- layout and memory
  /** A contiguous copy (same dtype). */
  contiguous(x: Tensor): Tensor;
  cast(x: Tensor, dtype: DType): Tensor;
  /** Copies src into dst elementwise; dst may be a strided view, shapes are equal. */
  copyInto(dst: Tensor, src: Tensor): void;
  /** Sets every element of a contiguous tensor. */
  fill(x: Tensor, value: number): void;

  // ---- elementwise (float dtypes; binary broadcasts numpy-style, both sides the same dtype)
  unary(op: UnaryOp, x: Tensor): Tensor;
  /** gy * f'(x) */
  unaryBackward(op: UnaryOp, x: Tensor, gy: Tensor): Tensor;
  binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor;

  // ---- reductions over one axis (argmax gives i32)
  reduce(op: ReduceOp, x: Tensor, axis: number, keepDims: boolean): Tensor;

  // ---- matrix products
  /** a [..., M, K] (or [..., K, M] when transA), b [..., K, N] (or [..., N, K] when transB); batch dims broadcast.
   *  b may be bf16/f16 (widened in the kernel); the result is f32 (f64 on reference when a is f64). */
  matmul(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor;
  /** x [..., K] · w[N, K]ᵀ + bias[N]; w may be bf16/f16. */
  linear(x: Tensor, w: Tensor, bias: Tensor | null): Tensor;
  /** x [..., K] · deq(w)ᵀ + bias[N] for a block-quantized w [N, K] (read block by block, never dequantized whole);
   *  f32 (f64 on reference when x is f64). int8Acts: a few-row product may round x to 8 bits per 32-value block and
   *  multiply in integers (quant/activations.ts; the native backend's decode kernels; the reference ignores it). */
  quantLinear(x: Tensor, w: QuantizedWeight, bias: Tensor | null, int8Acts?: boolean): Tensor;
  /** g [M, N] · deq(w) -> [M, K]: quantLinear's gradient with respect to x. */
  quantLinearGradInput(g: Tensor, w: QuantizedWeight): Tensor;

  // ---- softmax family over the last axis
  softmax(x: Tensor): Tensor;
  logSoftmax(x: Tensor): Tensor;
  softmaxBackward(y: Tensor, gy: Tensor): Tensor;
  logSoftmaxBackward(y: Tensor, gy: Tensor): Tensor;
  /** logits [N, V], targets [N] (i32/i64). Per-row loss (0 where target == ignoreIndex) and log-sum-exp. */
  crossEntropy(logits: Tensor, targets: Tensor, ignoreIndex: number): { losses: Tensor; lse: Tensor };
  /** d(sum_i gRow[i] * loss_i)/dlogits; rows with target == ignoreIndex get 0. */
  crossEntropyBackward(logits: Tensor, targets: Tensor, lse: Tensor, gRow: Tensor, ignoreIndex: number): Tensor;

  // ---- norms over the last axis (mean/rstd have the input's shape without its last axis)
  layerNorm(x: Tensor, w: Tensor | null, b: Tensor | null, eps: number): { y: Tensor; mean: Tensor; rstd: Tensor };
  layerNormBackward(x: Tensor, w: Tensor | null, mean: Tensor, rstd: Tensor, gy: Tensor, needWB: boolean):
    { gx: Tensor; gw: Tensor | null; gb: Tensor | null };
  rmsNorm(x: Tensor, w: Tensor | null, eps: number): { y: Tensor; rstd: Tensor };
  rmsNormBackward(x: Tensor, w: Tensor | null, rstd: Tensor, gy: Tensor, needW: boolean): { gx: Tensor; gw: Tensor | null };

  // ---- rotary embedding, Llama's rotate-half convention
  /** x [B, H, T, D], positions [B, T] (i32/i64), invFreq [D/2] f32. inverse rotates by -angle (the backward). */
  rope(x: Tensor, positions: Tensor, invFreq: Tensor, inverse: boolean): Tensor;

  // ---- attention: q [B, Hq, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv], Hq a multiple of Hkv (GQA)
  /** out [B, Hq, Tq, Dv] and the softmax log-sum-exp [B, Hq, Tq] saved for the backward. Rows with no key to
   *  attend to give zeros and lse = -Infinity. */
  attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): { out: Tensor; lse: Tensor };
  attentionBackward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, gout: Tensor, o: AttentionOptions):
    { gq: Tensor; gk: Tensor; gv: Tensor };

  // ---- rows
  /** weight [V, D] (f32/bf16/f16), ids int of any shape -> [...ids.shape, D] in f32 (f64 if weight is f64). */
  embedding(weight: Tensor, ids: Tensor): Tensor;
  /** Scatter-add of gy [...ids.shape, D] into a zero [vocab, D]. */
  embeddingBackward(ids: Tensor, gy: Tensor, vocab: number): Tensor;
  /** dst[idx[i], :] = src[i, :] in place; dst [N, D] contiguous, idx [M] int, src [M, D]. */
  indexCopy(dst: Tensor, idx: Tensor, src: Tensor): void;

  // ---- optimizer
  /** One AdamW step in place, torch's semantics (decoupled weight decay, bias correction). All f32 contiguous. */
  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWOptions): void;

  // ---- fused inference kernels (optional, no gradients): ops/fused.ts composes the kernels above when a backend
  // lacks them or a gradient is needed, and a backend's fused result must equal that composition.
  /** [x·W_0ᵀ, x·W_1ᵀ, ...]: x [..., K] f32, weights [N_i, K] of one dtype (f32/bf16/f16), no biases. */
  linears?(x: Tensor, ws: readonly Tensor[]): Tensor[];
  /** silu(x·Wgᵀ) ⊙ (x·Wuᵀ): x [..., K], Wg and Wu [N, K] of one dtype. */
  swiglu?(x: Tensor, wGate: Tensor, wUp: Tensor): Tensor;
  /** sum = x + r (same shape), y = rmsNorm(sum, w, eps). */
  addRmsNorm?(x: Tensor, r: Tensor, w: Tensor | null, eps: number): { sum: Tensor; y: Tensor };
  /** rope(q) (returned), and rope(k) and v written into kCache/vCache [B, Hkv, L, D] at [.., .., at:at+T]. */
  ropeAppendKV?(q: Tensor, k: Tensor, v: Tensor, positions: Tensor, invFreq: Tensor, kCache: Tensor, vCache: Tensor, at: number): Tensor;
  /**
   * One cached decode step of a Llama text stack in one call: the final-normed hidden states [B, 1, H] of input
   * embeddings x [B, 1, H] f32, each layer's keys and values written at position s.past of its caches. Equal, bit
   * for bit, to the layer-by-layer composition of the ops above (LlamaText.layer in models/idefics3/text.ts); the
   * caller checks that it applies (plain weights of one f32/bf16/f16 dtype or one block format, contiguous tensors,
   * no gradient, and for block formats at most 8 rows with 8-bit activations allowed).
   */
  llamaDecode?(x: Tensor, s: LlamaDecodeStack): Tensor;
}
