// Matrix products: f32 through OpenBLAS sgemm (parallelised by our pool, BLAS single-threaded per task), and
// products with bf16/f16 weights (direct AVX2 dot kernels for a few rows, panel-by-panel widening + sgemm for
// more). Row-major throughout, leading dimensions in elements.
#pragma once
#include <cstdint>

#include "core/formats.h"

namespace vk {

// B's element type is a WT (core/formats.h); gemm and gemm_batched take f32, bf16 and f16 (block-quantized
// weights go through kernels/qmatmul.h).

// C[M,N] = op(A)[M,K] · op(B)[K,N] (+ bias[N] broadcast over rows).
//   A f32: transA ? stored [K, M] : stored [M, K], leading dimension lda.
//   B of type bt: transB ? stored [N, K] (a linear layer's weight) : stored [K, N], leading dimension ldb.
//   C f32 [M, N] with leading dimension ldc. bias may be null.
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const void* B, WT bt,
          int64_t ldb, const float* bias, float* C, int64_t ldc);

// Rows of A up to which linear-layer products (transB, W stored [N, K]) take the gemm_nt kernel instead of
// OpenBLAS: the limit for bf16/f16 weights (f32 weights stop at min(limit, 256) on AVX2; on AVX-512 every product
// of f32/bf16/f16 operands up to the limit takes the kernel). -1 (the default): 4096 on AVX2, no limit on AVX-512.
// Benches and tests move it to compare the paths; 0 turns the kernel off.
int64_t gemm_nt_max_rows();
void set_gemm_nt_max_rows(int64_t rows);
// Whether gemm sends M rows against a weight of type wt (stored [N, K]) to gemm_nt.
bool gemm_nt_takes(int64_t M, WT wt);

// The few-row (decode) kernels for fused callers that share one packed x across several weights: whether they run
// for M rows, x packed into a buffer of the calling thread (valid until its next call there; the layout depends on
// the weight type), and C[:, n0:n1) = x · W[n0:n1)ᵀ (+ bias) on the calling thread, the same bits as gemm gives.
bool gemm_dot_available(int64_t M);
const float* gemm_dot_pack_local(WT wt, int64_t M, int64_t K, const float* A, int64_t lda);
void gemm_dot_cols(const float* xp, int64_t M, int64_t K, const void* W, WT wt, int64_t ldw, int64_t n0, int64_t n1,
                   const float* bias, float* C, int64_t ldc);

// nbatch products of the same shape; matrix q reads A + offA[q], B + offB[q] (element offsets, null = all 0)
// and writes C + q*M*N (contiguous).
void gemm_batched(int64_t nbatch, bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A,
                  const int64_t* offA, int64_t lda, const void* B, WT bt, const int64_t* offB, int64_t ldb,
                  float* C);

// Benchmark ceiling: seconds of each of `iters` calls (after one warm-up) of one plain sgemm of this shape with
// OpenBLAS itself running `threads` threads (restored to 1 afterwards).
void raw_sgemm_times(int64_t M, int64_t N, int64_t K, bool transB, int threads, int iters, double* seconds);

}  // namespace vk
