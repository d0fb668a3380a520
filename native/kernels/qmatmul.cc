// See qmatmul.h. Paths of the forward, chosen per call:
//  1. Few rows (M <= 8, decode): each row of W is read once, block by block; per block the 32 int8 values are
//     widened in registers, dotted with the rows of x, and the block sum is scaled by d once
//     (C = Σ_b d_b · Σ_j x_j q_bj). AVX2 with a scalar twin of the same order for other CPUs.
//  2. Prompt-sized rows on AVX2 CPUs (gemm_nt_takes): the 6x16 kernel of gemm_nt.cc, which decodes each 16-row
//     strip of W into L1 (d * q is exact in f32, so this equals the product with the dequantized weight).
//  3. Otherwise: panels of a few hundred rows of W decoded into a per-thread buffer, each through sgemm.
// The input gradient G · deq(W) decodes column panels of W (all N rows, a few blocks wide) per task and runs
// sgemm on each: every task owns its columns of C, so no reduction across threads.
// Q4_0 and NF4 (q4.cc, nf4.cc) take paths 1 and 3 and the same input gradient; gemm_nt's strips decode Q8_0 only.
// Asked for 8-bit activations (inference), few rows take qdot.cc's integer kernels instead of path 1.
#include "kernels/qmatmul.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "core/blas.h"
#include "core/cpu.h"
#include "core/pool.h"
#include "core/scratch.h"
#include "kernels/gemm_nt.h"
#include "kernels/layout.h"
#include "kernels/matmul.h"
#include "kernels/q4.h"
#include "kernels/qdot.h"

namespace vk {
namespace {

constexpr int64_t kQ8Values = wt_block_values(WT::Q8_0), kQ8Bytes = wt_block_bytes(WT::Q8_0);
// Rows of x up to which the block-dot kernels run (as the f32/bf16 dot path of matmul.cc).
constexpr int64_t kDotMaxRows = 8;
// Decoded panels stay under this many floats (1 MB) per thread.
constexpr int64_t kPanelFloats = 256 << 10;
// Products below this many multiply-adds run on the calling thread.
constexpr double kParallelWork = 64.0 * 64.0 * 64.0;

inline float q8_scale(const uint8_t* blk) {
  uint16_t h;
  std::memcpy(&h, blk, 2);
  return f16_to_f32(h);
}

// The same with F16C (f16_to_f32 is an out-of-line call, a third of the decode kernel's time per block).
__attribute__((target("avx2,fma,f16c"))) inline float q8_scale_f16c(const uint8_t* blk) {
  uint16_t h;
  std::memcpy(&h, blk, 2);
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

// ---- decoding blocks [b0, b1) of one Q8_0 row into dst

void decode_q8_0_scalar(const uint8_t* row, int64_t b0, int64_t b1, float* dst) {
  for (int64_t b = b0; b < b1; b++) {
    const uint8_t* blk = row + b * kQ8Bytes;
    const float d = q8_scale(blk);
    float* o = dst + (b - b0) * kQ8Values;
    for (int64_t j = 0; j < kQ8Values; j++) o[j] = d * (float)(int8_t)blk[2 + j];
  }
}

__attribute__((target("avx2,fma,f16c"))) void decode_q8_0_avx2(const uint8_t* row, int64_t b0, int64_t b1, float* dst) {
  for (int64_t b = b0; b < b1; b++) {
    const uint8_t* blk = row + b * kQ8Bytes;
    const __m256 d = _mm256_set1_ps(q8_scale_f16c(blk));
    float* o = dst + (b - b0) * kQ8Values;
    for (int j = 0; j < 32; j += 8) {
      const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 2 + j));
      _mm256_storeu_ps(o + j, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
    }
  }
}

inline void decode_q8_0(const uint8_t* row, int64_t b0, int64_t b1, float* dst) {
  if (has_avx2() && cpu_has_f16c()) decode_q8_0_avx2(row, b0, b1, dst);
  else decode_q8_0_scalar(row, b0, b1, dst);
}

// ---- path 1: block dots for a few rows

template <int MR>
void dot_q8_0_scalar(const float* A, int64_t lda, int64_t K, const uint8_t* W, int64_t n0, int64_t n1,
                     const float* bias, float* C, int64_t ldc) {
  const int64_t nb = K / kQ8Values, rb = nb * kQ8Bytes;
  for (int64_t n = n0; n < n1; n++) {
    const uint8_t* row = W + n * rb;
    float acc[MR] = {};
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t* blk = row + b * kQ8Bytes;
      const float d = q8_scale(blk);
      for (int m = 0; m < MR; m++) {
        const float* x = A + m * lda + b * kQ8Values;
        float s = 0.f;
        for (int64_t j = 0; j < kQ8Values; j++) s += x[j] * (float)(int8_t)blk[2 + j];
        acc[m] += d * s;
      }
    }
    for (int m = 0; m < MR; m++) C[m * ldc + n] = bias ? acc[m] + bias[n] : acc[m];
  }
}

__attribute__((target("avx2,fma"))) inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int MR>
__attribute__((target("avx2,fma,f16c"))) void dot_q8_0_avx2(const float* A, int64_t lda, int64_t K, const uint8_t* W,
                                                            int64_t n0, int64_t n1, const float* bias, float* C,
                                                            int64_t ldc) {
  const int64_t nb = K / kQ8Values, rb = nb * kQ8Bytes;
  for (int64_t n = n0; n < n1; n++) {
    const uint8_t* row = W + n * rb;
    __m256 acc[MR];
    for (int m = 0; m < MR; m++) acc[m] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t* blk = row + b * kQ8Bytes;
      // the weight is one sequential stream (this row, then the next): ask for it 1 KB ahead
      _mm_prefetch(reinterpret_cast<const char*>(blk) + 1024, _MM_HINT_T0);
      const __m256 d = _mm256_set1_ps(q8_scale_f16c(blk));
      __m256 q[4];
      for (int j = 0; j < 4; j++)
        q[j] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 2 + 8 * j))));
      for (int m = 0; m < MR; m++) {
        const float* x = A + m * lda + b * kQ8Values;
        __m256 s = _mm256_mul_ps(q[0], _mm256_loadu_ps(x));
        s = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(x + 8), s);
        s = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(x + 16), s);
        s = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(x + 24), s);
        acc[m] = _mm256_fmadd_ps(d, s, acc[m]);
      }
    }
    for (int m = 0; m < MR; m++) {
      const float s = hsum(acc[m]);
      C[m * ldc + n] = bias ? s + bias[n] : s;
    }
  }
}

using DotFn = void (*)(const float*, int64_t, int64_t, const uint8_t*, int64_t, int64_t, const float*, float*, int64_t);

template <int MR>
DotFn dot_q8_0() {
  return has_avx2() && cpu_has_f16c() ? dot_q8_0_avx2<MR> : dot_q8_0_scalar<MR>;
}

DotFn dot_for(int64_t M) {
  switch (M) {
    case 1: return dot_q8_0<1>();
    case 2: return dot_q8_0<2>();
    case 3: return dot_q8_0<3>();
    case 4: return dot_q8_0<4>();
    case 5: return dot_q8_0<5>();
    case 6: return dot_q8_0<6>();
    case 7: return dot_q8_0<7>();
    default: return dot_q8_0<8>();
  }
}

void dot_path(WT wt, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const void* W, const float* bias,
              float* C, int64_t ldc) {
  // contiguous ranges of rows of W per thread (one sequential stream each), at least ~32 KB of weight apiece
  const int64_t row_bytes = std::max<int64_t>(1, wt_row_bytes(wt, K));
  const int64_t grain = std::max<int64_t>(1, (32 << 10) / row_bytes);
  if (wt == WT::Q4_0) {
    const uint8_t* w = static_cast<const uint8_t*>(W);
    return parallel_for(N, grain, [&](int64_t b, int64_t e) { q4_0_dot(M, A, lda, K, w, b, e, bias, C, ldc); });
  }
  if (wt == WT::NF4) {
    const Nf4View& v = *static_cast<const Nf4View*>(W);
    return parallel_for(N, grain, [&](int64_t b, int64_t e) { nf4_dot(M, A, lda, K, v, b, e, bias, C, ldc); });
  }
  const DotFn f = dot_for(M);
  const uint8_t* w = static_cast<const uint8_t*>(W);
  parallel_for(N, grain, [&](int64_t b, int64_t e) { f(A, lda, K, w, b, e, bias, C, ldc); });
}

// ---- path 2: gemm_nt's strips

void nt_path(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const void* W, const float* bias, float* C,
             int64_t ldc) {
  const float* ap = gemm_nt_pack_local(M, K, A, lda);
  if (num_threads() == 1 || (double)M * N * K < kParallelWork)
    return gemm_nt_cols(ap, M, K, W, WT::Q8_0, K, 0, N, bias, C, ldc);
  const auto [tasks, per] = gemm_nt_tasks((N + 15) / 16);
  parallel_tasks(tasks, [&](int64_t t) {
    gemm_nt_cols(ap, M, K, W, WT::Q8_0, K, t * per * 16, std::min(N, (t + 1) * per * 16), bias, C, ldc);
  });
}

// ---- path 3: row panels of W decoded, then sgemm

void panel_path(WT wt, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const void* W, const float* bias,
                float* C, int64_t ldc) {
  const int64_t nt = num_threads();
  const int64_t maxP = std::max<int64_t>(16, (kPanelFloats / std::max<int64_t>(K, 1)) & ~int64_t(15));
  const int64_t P = std::min(maxP, std::max<int64_t>(16, ((N + nt - 1) / nt + 15) & ~int64_t(15)));
  const int64_t npanels = (N + P - 1) / P;
  parallel_tasks(npanels, [&](int64_t p) {
    const int64_t n0 = p * P, n1 = std::min(N, n0 + P), pw = n1 - n0;
    float* buf = scratch(Scratch::QPanel, pw * K);
    dequantize_rows(wt, K, W, n0, n1, 0, K, buf, K);
    float beta = 0.f;
    if (bias) {
      for (int64_t m = 0; m < M; m++) std::memcpy(C + m * ldc + n0, bias + n0, (size_t)pw * 4);
      beta = 1.f;
    }
    sgemm(false, true, (int)M, (int)pw, (int)K, 1.f, A, (int)lda, buf, (int)K, beta, C + n0, (int)ldc);
  });
}

void require(WT wt, int64_t K) {
  if (!qlinear_supported(wt)) throw std::runtime_error("no kernel for this weight format (Q8_0, Q4_0 and NF4 have them)");
  if (K % wt_block_values(wt) != 0) throw std::runtime_error("K is not a multiple of the format's block size");
}

}  // namespace

bool qlinear_supported(WT wt) { return wt == WT::Q8_0 || wt == WT::Q4_0 || wt == WT::NF4; }

void dequantize_rows(WT wt, int64_t K, const void* W, int64_t n0, int64_t n1, int64_t k0, int64_t k1, float* dst,
                     int64_t ldd) {
  require(wt, K);
  if (wt == WT::NF4) {
    const Nf4View& v = *static_cast<const Nf4View*>(W);
    for (int64_t n = n0; n < n1; n++) nf4_decode(v, K, n, k0, k1, dst + (n - n0) * ldd);
    return;
  }
  const uint8_t* base = static_cast<const uint8_t*>(W);
  const int64_t rb = wt_row_bytes(wt, K), bv = wt_block_values(wt);
  for (int64_t n = n0; n < n1; n++) {
    if (wt == WT::Q4_0) q4_0_decode(base + n * rb, k0 / bv, k1 / bv, dst + (n - n0) * ldd);
    else decode_q8_0(base + n * rb, k0 / bv, k1 / bv, dst + (n - n0) * ldd);
  }
}

void qlinear(WT wt, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const void* W, const float* bias,
             float* C, int64_t ldc, bool int8_acts) {
  require(wt, K);
  if (M <= 0 || N <= 0) return;
  if (K == 0) {
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) C[m * ldc + n] = bias ? bias[n] : 0.f;
    return;
  }
  if (int8_acts && M <= kQdotMaxRows) return qdot_linear(wt, M, N, K, A, lda, W, bias, C, ldc);
  if (M <= kDotMaxRows) return dot_path(wt, M, N, K, A, lda, W, bias, C, ldc);
  if (wt == WT::Q8_0 && gemm_nt_takes(M, wt)) return nt_path(M, N, K, A, lda, W, bias, C, ldc);
  panel_path(wt, M, N, K, A, lda, W, bias, C, ldc);
}

void qlinear_grad_input(WT wt, int64_t M, int64_t N, int64_t K, const float* G, int64_t ldg, const void* W, float* C,
                        int64_t ldc) {
  require(wt, K);
  if (M <= 0 || K <= 0) return;
  if (N == 0) {
    for (int64_t m = 0; m < M; m++) std::memset(C + m * ldc, 0, (size_t)K * 4);
    return;
  }
  // column panels of whole blocks: at most kPanelFloats decoded, and about two per thread
  const int64_t bv = wt_block_values(wt), nb = K / bv, nt = num_threads();
  const int64_t maxB = std::max<int64_t>(1, kPanelFloats / (N * bv));
  const int64_t per = std::max<int64_t>(1, std::min(maxB, (nb + 2 * nt - 1) / (2 * nt)));
  const int64_t tasks = (nb + per - 1) / per;
  parallel_tasks(tasks, [&](int64_t t) {
    const int64_t k0 = t * per * bv, k1 = std::min(nb, (t + 1) * per) * bv, kw = k1 - k0;
    float* buf = scratch(Scratch::QPanel, N * kw);
    dequantize_rows(wt, K, W, 0, N, k0, k1, buf, kw);
    sgemm(false, false, (int)M, (int)kw, (int)N, 1.f, G, (int)ldg, buf, (int)kw, 0.f, C + k0, (int)ldc);
  });
}

}  // namespace vk
