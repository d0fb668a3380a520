#include "core/blas.h"

#ifdef VLMKIT_ACCELERATE
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
extern "C" void openblas_set_num_threads(int);
#endif

namespace vk {

void blas_set_threads(int n) {
#ifndef VLMKIT_ACCELERATE
  openblas_set_num_threads(n);
#else
  (void)n;
#endif
}

void sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
           int ldb, float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, alpha,
              A, lda, B, ldb, beta, C, ldc);
}

}  // namespace vk
