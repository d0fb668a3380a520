// The one place that includes the platform BLAS. Row-major sgemm only.
#pragma once

namespace vk {
void blas_set_threads(int n);
// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, row-major, leading dimensions in elements.
void sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
           int ldb, float beta, float* C, int ldc);
}  // namespace vk
