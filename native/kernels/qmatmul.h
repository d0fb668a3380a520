// Linear products against a block-quantized weight W [N, K] (rows of packed blocks, core/formats.h): the forward
// C = A · deq(W)ᵀ and its input gradient C = G · deq(W). The blocks are decoded inside the product (in registers,
// an L1 strip or a bounded per-thread panel), never into a dequantized copy of W. Q8_0, Q4_0 and NF4.
// W points at the packed rows for Q8_0 and Q4_0, and at an Nf4View (kernels/q4.h) for NF4, whose absmax lives
// apart from the codes.
#pragma once
#include <cstdint>

#include "core/formats.h"

namespace vk {

// Whether qlinear / qlinear_grad_input / dequantize_rows have kernels for this format.
bool qlinear_supported(WT wt);

// C[M, N] = A[M, K] · deq(W)ᵀ (+ bias[N]); A and C row-major with row strides lda, ldc; K a multiple of the block.
// int8_acts: up to kQdotMaxRows rows of A are rounded to 8 bits per 32-value block and multiplied in integers
// (kernels/qdot.h: faster decode, within the activation rounding of the exact product); otherwise, and for more
// rows, the product is the one with the dequantized weight to f32 rounding.
void qlinear(WT wt, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const void* W, const float* bias,
             float* C, int64_t ldc, bool int8_acts = false);

// C[M, K] = G[M, N] · deq(W) (the gradient of qlinear with respect to A); G and C row-major, strides ldg, ldc.
void qlinear_grad_input(WT wt, int64_t M, int64_t N, int64_t K, const float* G, int64_t ldg, const void* W, float* C,
                        int64_t ldc);

// dst[n - n0][k - k0] = deq(W)[n, k] for rows [n0, n1) and columns [k0, k1) (multiples of the block size);
// dst row stride ldd.
void dequantize_rows(WT wt, int64_t K, const void* W, int64_t n0, int64_t n1, int64_t k0, int64_t k1, float* dst,
                     int64_t ldd);

}  // namespace vk
