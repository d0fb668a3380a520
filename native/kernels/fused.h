// Fused inference kernels (no autograd): several linears of one input in one pass over the pool, the SwiGLU MLP
// input silu(x·Wgᵀ) ⊙ (x·Wuᵀ), the residual add fused with RMS norm, and RoPE fused with the KV-cache append.
// They orchestrate the kernels of the other families (gemm, rms_norm_forward, unary/binary, rope) and reproduce
// the unfused ops bit for bit; what they save is dispatches, temporaries and, for few rows (decode), short weight
// streams: all the weights of one fused call are shared out over the pool as one long stream.
#pragma once
#include <cstdint>

#include "kernels/matmul.h"

namespace vk {

// y_i [M, n_i] (row stride n_i) = x [M, K] (row stride ldx) · W_iᵀ, W_i stored [n_i, K] row-major, all of type wt.
void fused_linears(int64_t M, int64_t K, const float* x, int64_t ldx, WT wt, int count, const void* const* w,
                   const int64_t* n, float* const* y);

// y [M, N] = silu(x·Wgᵀ) ⊙ (x·Wuᵀ); Wg, Wu stored [N, K] of type wt.
void fused_swiglu(int64_t M, int64_t K, const float* x, int64_t ldx, WT wt, const void* wg, const void* wu, int64_t N,
                  float* y);

// s = x + r, y = rms_norm(s) ⊙ w over rows of D (all contiguous [R, D]; s may alias x or r; w may be null).
void fused_add_rms_norm(int64_t R, int64_t D, const float* x, const float* r, const float* w, float eps, float* s,
                        float* y);

// A [B, H, T, D] f32 view with unit stride on D; strides in elements.
struct View4 {
  float* p;
  int64_t sb, sh, st;
};

// q_out [B, Hq, T, D] contiguous = rope(q); kc[:, :, at:at+T] = rope(k); vc[:, :, at:at+T] = v. positions [B, T]
// (i32, or i64 when pos64), inv_freq [D/2]. The rotations are vk::rope's.
void fused_rope_append_kv(int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, View4 q, View4 k, View4 v,
                          const void* positions, bool pos64, const float* inv_freq, float* q_out, View4 kc, View4 vc,
                          int64_t at);

}  // namespace vk
