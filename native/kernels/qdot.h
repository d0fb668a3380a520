// Few-row products with a block-quantized weight on 8-bit activations, as ggml runs Q8_0/Q4_0 decode: each
// 32-value block of every row of A is rounded to int8 with an f32 scale, and the weight's blocks are dotted with
// it in integer arithmetic (AVX2 maddubs/madd, AVX-512 VNNI vpdpbusd, or the scalar twin), exactly. Only the f32
// combination of the block sums rounds, in one order fixed for every path (qdot.cc), so every instruction set gives
// the same bits. The activation rounding moves each result by at most Σ_b (d_b / 2) Σ_j |w_bj| (d_b = the block's
// max |x| / 127); NF4's codes are read as round(127 · code) / 127 on top (docs/quantization.md).
#pragma once
#include <cstdint>

#include "core/formats.h"

namespace vk {

// Rows of A up to which qlinear takes these kernels when asked for 8-bit activations.
constexpr int64_t kQdotMaxRows = 8;

// C[M, N] = A[M, K] · deq(W)ᵀ (+ bias[N]) on 8-bit activations, M in 1..kQdotMaxRows. W as for qlinear (packed
// rows for Q8_0/Q4_0, an Nf4View for NF4); K a multiple of the format's block.
void qdot_linear(WT wt, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const void* W, const float* bias,
                 float* C, int64_t ldc);

// C_i [M, N_i] (row stride N_i) = A · deq(W_i)ᵀ for `count` weights of one format and input size: the activations
// are quantized once and the rows of every weight, laid end to end, are shared out over the pool as one stream.
// Each output equals qdot_linear's bit for bit (every row of W is computed on its own).
void qdot_linears(WT wt, int64_t M, int64_t K, const float* A, int64_t lda, int count, const void* const* W,
                  const int64_t* N, float* const* C);

// y [M, N] = silu(A · deq(Wg)ᵀ) ⊙ (A · deq(Wu)ᵀ): the same bits as qdot_linear for each weight followed by the
// elementwise silu and mul kernels over the rows (the op-by-op SwiGLU of a quantized model), in one pass.
void qdot_swiglu(WT wt, int64_t M, int64_t K, const float* A, int64_t lda, const void* Wg, const void* Wu, int64_t N,
                 float* y);

}  // namespace vk
