// SIMD pieces of the attention kernels (see attention_simd.h): the online-softmax row primitives, and AVX2/FMA
// register-tile products. Each tile keeps 6 x 16 outputs in twelve ymm accumulators; per k it loads one 16-wide row
// of B and broadcasts six elements of A: 12 FMAs for 8 loads, so the FMA ports stay the bottleneck. B's column
// chunk (K x 16 floats) stays in L1 across the row groups.
#include "kernels/attention_simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VK_X86 1
#endif

#include "core/cpu.h"

namespace vk {

#ifdef VK_X86
#define VK_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------------------------------------------------------
// Row primitives.

float max_scalar(const float* s, int64_t n) {
  float m = kNegInf;
  for (int64_t j = 0; j < n; j++) m = s[j] > m ? s[j] : m;
  return m;
}
float exp2_sum_scalar(float* s, int64_t n, float m) {
  float sum = 0.f;
  for (int64_t j = 0; j < n; j++) sum += (s[j] = std::exp2(s[j] - m));
  return sum;
}
void add_scalar(float* s, const float* b, int64_t n) {
  for (int64_t j = 0; j < n; j++) s[j] += b[j];
}
void scale_scalar(float* x, int64_t n, float a) {
  for (int64_t j = 0; j < n; j++) x[j] *= a;
}
void scale_copy_scalar(float* d, const float* s, int64_t n, float a) {
  for (int64_t j = 0; j < n; j++) d[j] = s[j] * a;
}
float dot_scalar(const float* a, const float* b, int64_t n) {
  float s = 0.f;
  for (int64_t j = 0; j < n; j++) s += a[j] * b[j];
  return s;
}
void dsoft_scalar(float* dp, const float* p, int64_t n, float d) {
  for (int64_t j = 0; j < n; j++) dp[j] = p[j] * (dp[j] - d);
}
void acc_scalar(float* d, const float* s, int64_t n) {
  for (int64_t j = 0; j < n; j++) d[j] += s[j];
}

#ifdef VK_X86

VK_AVX2 inline float hsum(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}
VK_AVX2 inline float hmax(__m256 v) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  x = _mm_max_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

// 2^x: x = n + f with f in [-1/2, 1/2], 2^f by its degree-7 Taylor polynomial (relative error < 1e-8), 2^n through
// the exponent bits. Below -126 (masked scores are -inf) the result is exactly 0; NaN stays NaN.
VK_AVX2 inline __m256 exp2_ps(__m256 x) {
  const __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(-126.f), _CMP_LT_OQ);
  x = _mm256_max_ps(_mm256_set1_ps(-126.f), _mm256_min_ps(_mm256_set1_ps(127.f), x));
  const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(x, n);
  __m256 p = _mm256_set1_ps(1.5252733804e-5f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.5403530393e-4f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3333558146e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.6181291076e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5504108665e-2f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022650696e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9314718056e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

VK_AVX2 float max_avx2(const float* s, int64_t n) {
  __m256 m0 = _mm256_set1_ps(kNegInf), m1 = m0;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(s + j));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(s + j + 8));
  }
  for (; j + 8 <= n; j += 8) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(s + j));
  float m = hmax(_mm256_max_ps(m0, m1));
  for (; j < n; j++) m = s[j] > m ? s[j] : m;
  return m;
}
VK_AVX2 float exp2_sum_avx2(float* s, int64_t n, float m) {
  const __m256 vm = _mm256_set1_ps(m);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m256 e0 = exp2_ps(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
    __m256 e1 = exp2_ps(_mm256_sub_ps(_mm256_loadu_ps(s + j + 8), vm));
    _mm256_storeu_ps(s + j, e0);
    _mm256_storeu_ps(s + j + 8, e1);
    a0 = _mm256_add_ps(a0, e0);
    a1 = _mm256_add_ps(a1, e1);
  }
  for (; j + 8 <= n; j += 8) {
    __m256 e0 = exp2_ps(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
    _mm256_storeu_ps(s + j, e0);
    a0 = _mm256_add_ps(a0, e0);
  }
  if (j < n) {  // the tail through a padded vector, so that every element sees the same approximation
    alignas(32) float t[8];
    for (int i = 0; i < 8; i++) t[i] = j + i < n ? s[j + i] : kNegInf;
    __m256 e0 = exp2_ps(_mm256_sub_ps(_mm256_load_ps(t), vm));
    _mm256_store_ps(t, e0);
    a1 = _mm256_add_ps(a1, e0);
    for (int i = 0; j + i < n; i++) s[j + i] = t[i];
  }
  return hsum(_mm256_add_ps(a0, a1));
}
VK_AVX2 void add_avx2(float* s, const float* b, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, _mm256_add_ps(_mm256_loadu_ps(s + j), _mm256_loadu_ps(b + j)));
  for (; j < n; j++) s[j] += b[j];
}
VK_AVX2 void scale_avx2(float* x, int64_t n, float a) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), va));
  for (; j < n; j++) x[j] *= a;
}
VK_AVX2 void scale_copy_avx2(float* d, const float* s, int64_t n, float a) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(d + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), va));
  for (; j < n; j++) d[j] = s[j] * a;
}
VK_AVX2 float dot_avx2(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(b + j + 8), s1);
  }
  for (; j + 8 <= n; j += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; j < n; j++) s += a[j] * b[j];
  return s;
}
VK_AVX2 void dsoft_avx2(float* dp, const float* p, int64_t n, float d) {
  const __m256 vd = _mm256_set1_ps(d);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    _mm256_storeu_ps(dp + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), _mm256_sub_ps(_mm256_loadu_ps(dp + j), vd)));
  for (; j < n; j++) dp[j] = p[j] * (dp[j] - d);
}
VK_AVX2 void acc_avx2(float* d, const float* s, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(d + j, _mm256_add_ps(_mm256_loadu_ps(d + j), _mm256_loadu_ps(s + j)));
  for (; j < n; j++) d[j] += s[j];
}
#endif

}  // namespace

const RowOps& attn_row_ops() {
  static const RowOps scalar{max_scalar,        exp2_sum_scalar, add_scalar,   scale_scalar,
                             scale_copy_scalar, dot_scalar,      dsoft_scalar, acc_scalar};
#ifdef VK_X86
  static const RowOps avx2{max_avx2, exp2_sum_avx2, add_avx2, scale_avx2, scale_copy_avx2, dot_avx2, dsoft_avx2, acc_avx2};
  if (has_avx2()) return avx2;
#endif
  return scalar;
}


// ---------------------------------------------------------------------------------------------------------------
// Register-tile products.

#ifdef VK_X86
namespace {

// Named accumulators (an array of __m256 would be kept in memory by GCC); rows beyond MR and the second vector
// when NV == 1 compile away.
#define VK_ROW(i)                                                          \
  if constexpr (MR > i) {                                                  \
    const __m256 a = _mm256_broadcast_ss(A + i * ars);                     \
    c##i##0 = _mm256_fmadd_ps(a, b0, c##i##0);                             \
    if constexpr (NV > 1) c##i##1 = _mm256_fmadd_ps(a, b1, c##i##1);       \
  }
#define VK_STORE(i)                                                        \
  if constexpr (MR > i) {                                                  \
    store(C + i * ldc, c##i##0, rs ? rs[i] : beta);                        \
    if constexpr (NV > 1) store(C + i * ldc + 8, c##i##1, rs ? rs[i] : beta); \
  }

template <int MR, int NV>
VK_AVX2 void tile(int64_t K, const float* A, int64_t ars, int64_t aks, const float* B, int64_t ldb, float* C,
                  int64_t ldc, float alpha, float beta, const float* rs) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t k = 0; k < K; k++) {
    const __m256 b0 = _mm256_loadu_ps(B);
    const __m256 b1 = NV > 1 ? _mm256_loadu_ps(B + 8) : b0;
    VK_ROW(0) VK_ROW(1) VK_ROW(2) VK_ROW(3) VK_ROW(4) VK_ROW(5)
    A += aks;
    B += ldb;
  }
  const __m256 va = _mm256_set1_ps(alpha);
  auto store = [&](float* c, __m256 acc, float s) VK_AVX2 {
    __m256 r = _mm256_mul_ps(acc, va);
    if (s != 0.f) r = _mm256_fmadd_ps(_mm256_set1_ps(s), _mm256_loadu_ps(c), r);
    _mm256_storeu_ps(c, r);
  };
  VK_STORE(0) VK_STORE(1) VK_STORE(2) VK_STORE(3) VK_STORE(4) VK_STORE(5)
}
#undef VK_ROW
#undef VK_STORE

using TileFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, float, float,
                        const float*);
const TileFn kTiles[7][2] = {
    {nullptr, nullptr},     {tile<1, 1>, tile<1, 2>}, {tile<2, 1>, tile<2, 2>}, {tile<3, 1>, tile<3, 2>},
    {tile<4, 1>, tile<4, 2>}, {tile<5, 1>, tile<5, 2>}, {tile<6, 1>, tile<6, 2>},
};

// Dot products of MR rows of A with NJ rows of X: 8-lane partial sums per pair, reduced at the end.
template <int MR, int NJ>
VK_AVX2 void dots(int64_t D, const float* A, int64_t lda, const float* X, int64_t ldx, float* S, int64_t lds) {
  __m256 acc[2][4];  // small and fully unrolled below: GCC keeps these in registers
#define VK_Z(i, j) acc[i][j] = _mm256_setzero_ps();
  VK_Z(0, 0) VK_Z(0, 1) VK_Z(0, 2) VK_Z(0, 3) VK_Z(1, 0) VK_Z(1, 1) VK_Z(1, 2) VK_Z(1, 3)
#undef VK_Z
  for (int64_t d = 0; d < D; d += 8) {
    __m256 x[4];
    x[0] = _mm256_loadu_ps(X + d);
    if constexpr (NJ > 1) x[1] = _mm256_loadu_ps(X + ldx + d);
    if constexpr (NJ > 2) x[2] = _mm256_loadu_ps(X + 2 * ldx + d);
    if constexpr (NJ > 3) x[3] = _mm256_loadu_ps(X + 3 * ldx + d);
    const __m256 q0 = _mm256_loadu_ps(A + d);
    acc[0][0] = _mm256_fmadd_ps(q0, x[0], acc[0][0]);
    if constexpr (NJ > 1) acc[0][1] = _mm256_fmadd_ps(q0, x[1], acc[0][1]);
    if constexpr (NJ > 2) acc[0][2] = _mm256_fmadd_ps(q0, x[2], acc[0][2]);
    if constexpr (NJ > 3) acc[0][3] = _mm256_fmadd_ps(q0, x[3], acc[0][3]);
    if constexpr (MR > 1) {
      const __m256 q1 = _mm256_loadu_ps(A + lda + d);
      acc[1][0] = _mm256_fmadd_ps(q1, x[0], acc[1][0]);
      if constexpr (NJ > 1) acc[1][1] = _mm256_fmadd_ps(q1, x[1], acc[1][1]);
      if constexpr (NJ > 2) acc[1][2] = _mm256_fmadd_ps(q1, x[2], acc[1][2]);
      if constexpr (NJ > 3) acc[1][3] = _mm256_fmadd_ps(q1, x[3], acc[1][3]);
    }
  }
  for (int i = 0; i < MR; i++) {
    if constexpr (NJ == 4) {
      const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(acc[i][0], acc[i][1]), _mm256_hadd_ps(acc[i][2], acc[i][3]));
      _mm_storeu_ps(S + i * lds, _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
    } else {
      for (int j = 0; j < NJ; j++) {
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc[i][j]), _mm256_extractf128_ps(acc[i][j], 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        S[i * lds + j] = _mm_cvtss_f32(h);
      }
    }
  }
}

}  // namespace

void attn_gemm_nt_rows(int64_t M, int64_t N, int64_t D, const float* A, int64_t lda, const float* X, int64_t ldx,
                       float* S, int64_t lds) {
  for (int64_t i = 0; i < M; i += 2) {
    const float* a = A + i * lda;
    float* s = S + i * lds;
    int64_t j = 0;
    if (M - i >= 2) {
      for (; j + 4 <= N; j += 4) dots<2, 4>(D, a, lda, X + j * ldx, ldx, s + j, lds);
      for (; j < N; j++) dots<2, 1>(D, a, lda, X + j * ldx, ldx, s + j, lds);
    } else {
      for (; j + 4 <= N; j += 4) dots<1, 4>(D, a, lda, X + j * ldx, ldx, s + j, lds);
      for (; j < N; j++) dots<1, 1>(D, a, lda, X + j * ldx, ldx, s + j, lds);
    }
  }
}

bool attn_gemm_available() { return has_avx2(); }

void attn_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t ars, int64_t aks, const float* B, int64_t ldb,
               int64_t b16, float* C, int64_t ldc, float alpha, float beta, const float* row_scale) {
  for (int64_t c = 0; c < N; c += 16) {
    const int nv = N - c >= 16 ? 2 : 1;
    const float* Bc = B + (c / 16) * b16;
    for (int64_t i = 0; i < M; i += 6) {
      const int mr = (int)std::min<int64_t>(6, M - i);
      kTiles[mr][nv - 1](K, A + i * ars, ars, aks, Bc, ldb, C + i * ldc + c, ldc, alpha, beta,
                         row_scale ? row_scale + i : nullptr);
    }
  }
}

#else
bool attn_gemm_available() { return false; }
void attn_gemm_nt_rows(int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t) {}
void attn_gemm(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, const float*, int64_t, int64_t, float*,
               int64_t, float, float, const float*) {}
#endif

void attn_pack_panels(const float* X, int64_t ldx, int64_t n, int64_t D, float* out) {
  for (int64_t p0 = 0; p0 < n; p0 += 16) {
    const int64_t w = std::min<int64_t>(16, n - p0);
    float* dst = out + (p0 / 16) * D * 16;
    if (w < 16) std::memset(dst, 0, D * 16 * sizeof(float));
    for (int64_t j = 0; j < w; j++) {
      const float* src = X + (p0 + j) * ldx;
      for (int64_t d = 0; d < D; d++) dst[d * 16 + j] = src[d];
    }
  }
}

}  // namespace vk
