// SIMD pieces of the fused attention kernels: the online-softmax row primitives, and small-block matrix products
// on AVX2/FMA register tiles of 6 rows x 16 columns.
// A is read through two strides (A(i, k) = A[i * ars + k * aks]), so Pᵀ·dO and dSᵀ·Q need no transposed copy;
// B is row-major [K, N] with its 16-column chunks `b16` floats apart (16 for a plain row-major matrix, K * 16 for
// keys packed as panels of 16 by attn_pack_panels).
#pragma once
#include <cstdint>

namespace vk {

// Row primitives, AVX2/FMA or scalar (chosen once at run time).
struct RowOps {
  float (*max)(const float* s, int64_t n);
  float (*exp2_sum)(float* s, int64_t n, float m);  // s = 2^(s - m) (0 where s = -inf); returns the sum
  void (*add)(float* s, const float* b, int64_t n);
  void (*scale)(float* x, int64_t n, float a);
  void (*scale_copy)(float* dst, const float* src, int64_t n, float a);
  float (*dot)(const float* a, const float* b, int64_t n);
  void (*dsoft)(float* dp, const float* p, int64_t n, float d);  // dp = p * (dp - d)
  void (*acc)(float* dst, const float* src, int64_t n);          // dst += src
};
const RowOps& attn_row_ops();

// True when the CPU has AVX2 and FMA (otherwise the attention kernels use sgemm).
bool attn_gemm_available();

// C[i, :N] = alpha * Σ_k A(i, k) B[k, :N] + s_i * C[i, :N] for i < M, where s_i = row_scale[i] when row_scale is
// given, else beta (beta == 0 ignores the old C). N must be a multiple of 8.
void attn_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t ars, int64_t aks, const float* B, int64_t ldb,
               int64_t b16, float* C, int64_t ldc, float alpha, float beta, const float* row_scale);

// S[i, j] = Σ_d A[i * lda + d] X[j * ldx + d] for i < M, j < N, reading the rows of X in place (no packing: for
// few rows of A, as in one-row decode, where packing X would cost more than the product). D a multiple of 8.
void attn_gemm_nt_rows(int64_t M, int64_t N, int64_t D, const float* A, int64_t lda, const float* X, int64_t ldx,
                       float* S, int64_t lds);

// Packs the rows [0, n) of X (n x D, row stride ldx) as ceil(n/16) panels of [D][16] (keys beyond n are zero).
void attn_pack_panels(const float* X, int64_t ldx, int64_t n, int64_t D, float* out);

}  // namespace vk
