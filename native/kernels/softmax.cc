// Softmax kernels: two passes over each row (max, then exp and sum), the row staying in L1/L2 between them;
// AVX2 with masked tails, scalar fallback. Rows are spread over the pool.
#include "kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "core/pool.h"
#include "kernels/split.h"
#include "kernels/vmath.h"

namespace vk {
namespace {

using namespace vm;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int64_t grain_rows(int64_t d) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(d, 1)); }
// rows per chunk claimed by a thread (~64K elements)
int64_t chunk_rows(int64_t d) { return std::max<int64_t>(1, 65536 / std::max<int64_t>(d, 1)); }

// ---------------------------------------------------------------- scalar row primitives
float max_s(const float* x, int64_t d) {
  float m = kNegInf;
  for (int64_t i = 0; i < d; i++) m = std::isnan(x[i]) || x[i] > m ? x[i] : m;
  return m;
}
// sum exp(x - m), optionally storing the terms
double expsum_s(const float* x, int64_t d, float m, float* y) {
  double s = 0;
  for (int64_t i = 0; i < d; i++) {
    float e = std::exp(x[i] - m);
    if (y) y[i] = e;
    s += e;
  }
  return s;
}

// ---------------------------------------------------------------- AVX2 row primitives
VK_AVX2 float max_v(const float* x, int64_t d) {
  __m256 m0 = _mm256_set1_ps(kNegInf), m1 = m0;
  __m256 nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= d; i += 16) {
    __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(a, b, _CMP_UNORD_Q));
    m0 = _mm256_max_ps(m0, a);
    m1 = _mm256_max_ps(m1, b);
  }
  for (; i + 8 <= d; i += 8) {
    __m256 a = _mm256_loadu_ps(x + i);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
    m0 = _mm256_max_ps(m0, a);
  }
  float m = hmax(_mm256_max_ps(m0, m1));
  if (_mm256_movemask_ps(nan)) return std::numeric_limits<float>::quiet_NaN();
  for (; i < d; i++) m = std::isnan(x[i]) || x[i] > m ? x[i] : m;
  return m;
}

// sum exp(x - m) (and the terms into y when given): f32 lane sums over blocks of 128 elements (each lane adds
// at most 16 terms <= 1, so a block sum is exact to a few ulp), blocks added in f64.
VK_AVX2 double expsum_v(const float* x, int64_t d, float m, float* y) {
  const __m256 mv = _mm256_set1_ps(m);
  __m256d acc = _mm256_setzero_pd();
  int64_t i = 0;
  const int64_t dv = d & ~int64_t(7);
  while (i < dv) {
    const int64_t end = std::min(i + 128, dv);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (; i + 16 <= end; i += 16) {
      __m256 e0 = exp8_neg(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
      __m256 e1 = exp8_neg(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mv));
      if (y) {
        _mm256_storeu_ps(y + i, e0);
        _mm256_storeu_ps(y + i + 8, e1);
      }
      s0 = _mm256_add_ps(s0, e0);
      s1 = _mm256_add_ps(s1, e1);
    }
    if (i < end) {
      __m256 e0 = exp8_neg(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
      if (y) _mm256_storeu_ps(y + i, e0);
      s0 = _mm256_add_ps(s0, e0);
      i += 8;
    }
    acc_pd(acc, _mm256_add_ps(s0, s1));
  }
  if (i < d) {
    __m256i mk = tail_mask(d - i);
    __m256 v = _mm256_blendv_ps(_mm256_set1_ps(kNegInf), _mm256_maskload_ps(x + i, mk), _mm256_castsi256_ps(mk));
    __m256 e = exp8_neg(_mm256_sub_ps(v, mv));
    if (y) _mm256_maskstore_ps(y + i, mk, e);
    // masked-off lanes are exp(-inf) = 0 (or NaN when m is -inf/NaN: then the whole row is NaN anyway)
    acc_pd(acc, _mm256_and_ps(e, _mm256_castsi256_ps(mk)));
  }
  return hsum_pd(acc);
}

// y = x * s (in place allowed)
VK_AVX2 void scale_v(float* y, int64_t d, float s) {
  const __m256 sv = _mm256_set1_ps(s);
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), sv));
  for (; i < d; i++) y[i] *= s;
}
// y = x - c
VK_AVX2 void shift_v(const float* x, float* y, int64_t d, float c) {
  const __m256 cv = _mm256_set1_ps(c);
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) _mm256_storeu_ps(y + i, _mm256_sub_ps(_mm256_loadu_ps(x + i), cv));
  for (; i < d; i++) y[i] = x[i] - c;
}
VK_AVX2 double dot_v(const float* a, const float* b, int64_t d) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0;
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) {
    __m256 p = _mm256_mul_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
  }
  double s = hsum_pd(_mm256_add_pd(a0, a1));
  for (; i < d; i++) s += (double)(a[i] * b[i]);
  return s;
}
VK_AVX2 double sum_v(const float* a, int64_t d) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0;
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) {
    __m256 p = _mm256_loadu_ps(a + i);
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
  }
  double s = hsum_pd(_mm256_add_pd(a0, a1));
  for (; i < d; i++) s += a[i];
  return s;
}
// gx = y * (gy - c)
VK_AVX2 void softmax_bw_v(const float* y, const float* gy, float* gx, int64_t d, float c) {
  const __m256 cv = _mm256_set1_ps(c);
  int64_t i = 0;
  for (; i + 8 <= d; i += 8)
    _mm256_storeu_ps(gx + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), _mm256_sub_ps(_mm256_loadu_ps(gy + i), cv)));
  for (; i < d; i++) gx[i] = y[i] * (gy[i] - c);
}
// gx = gy - exp(y) * c  (y are log-probabilities, <= 0)
VK_AVX2 void logsoftmax_bw_v(const float* y, const float* gy, float* gx, int64_t d, float c) {
  const __m256 cv = _mm256_set1_ps(c);
  int64_t i = 0;
  for (; i + 8 <= d; i += 8)
    _mm256_storeu_ps(gx + i, _mm256_fnmadd_ps(exp8_neg(_mm256_loadu_ps(y + i)), cv, _mm256_loadu_ps(gy + i)));
  if (i < d) {
    __m256i mk = tail_mask(d - i);
    __m256 e = exp8_neg(_mm256_maskload_ps(y + i, mk));
    _mm256_maskstore_ps(gx + i, mk, _mm256_fnmadd_ps(e, cv, _mm256_maskload_ps(gy + i, mk)));
  }
}
// gx = g * exp(x - l); with NT the aligned body uses streaming stores (the gradient of a large lm_head is
// written once and read by the next matmul from memory anyway) and the unaligned head/tail masked stores.
template <bool NT>
VK_AVX2 void ce_bw_v(const float* x, float* gx, int64_t d, float l, float g) {
  const __m256 lv = _mm256_set1_ps(l), gv = _mm256_set1_ps(g);
  int64_t i = 0;
  if (NT) {
    int64_t h = (int64_t)(((32 - ((uintptr_t)gx & 31)) & 31) / 4);
    if (h > d) h = d;
    if (h) {
      __m256i mk = tail_mask(h);
      _mm256_maskstore_ps(gx, mk, _mm256_mul_ps(gv, exp8_neg(_mm256_sub_ps(_mm256_maskload_ps(x, mk), lv))));
    }
    for (i = h; i + 8 <= d; i += 8)
      _mm256_stream_ps(gx + i, _mm256_mul_ps(gv, exp8_neg(_mm256_sub_ps(_mm256_loadu_ps(x + i), lv))));
    _mm_sfence();
  } else {
    for (; i + 8 <= d; i += 8)
      _mm256_storeu_ps(gx + i, _mm256_mul_ps(gv, exp8_neg(_mm256_sub_ps(_mm256_loadu_ps(x + i), lv))));
  }
  if (i < d) {
    __m256i mk = tail_mask(d - i);
    __m256 e = exp8_neg(_mm256_sub_ps(_mm256_maskload_ps(x + i, mk), lv));
    _mm256_maskstore_ps(gx + i, mk, _mm256_mul_ps(gv, e));
  }
}

// ---------------------------------------------------------------- dispatch
struct Row {
  bool avx = has_avx2();
  float max(const float* x, int64_t d) const { return avx ? max_v(x, d) : max_s(x, d); }
  double expsum(const float* x, int64_t d, float m, float* y) const {
    return avx ? expsum_v(x, d, m, y) : expsum_s(x, d, m, y);
  }
  void scale(float* y, int64_t d, float s) const {
    if (avx) return scale_v(y, d, s);
    for (int64_t i = 0; i < d; i++) y[i] *= s;
  }
  void shift(const float* x, float* y, int64_t d, float c) const {
    if (avx) return shift_v(x, y, d, c);
    for (int64_t i = 0; i < d; i++) y[i] = x[i] - c;
  }
  double dot(const float* a, const float* b, int64_t d) const {
    if (avx) return dot_v(a, b, d);
    double s = 0;
    for (int64_t i = 0; i < d; i++) s += (double)(a[i] * b[i]);
    return s;
  }
  double sum(const float* a, int64_t d) const {
    if (avx) return sum_v(a, d);
    double s = 0;
    for (int64_t i = 0; i < d; i++) s += a[i];
    return s;
  }
};

}  // namespace

int64_t target_at(const void* t, bool t64, int64_t i) {
  return t64 ? static_cast<const int64_t*>(t)[i] : (int64_t) static_cast<const int32_t*>(t)[i];
}

void softmax_f32(int64_t rows, int64_t d, const float* x, float* y, bool log) {
  Row R;
  for_chunks(rows, grain_rows(d), chunk_rows(d), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const float* xr = x + r * d;
      float* yr = y + r * d;
      float m = R.max(xr, d);
      if (log) {
        double s = R.expsum(xr, d, m, nullptr);
        R.shift(xr, yr, d, m + (float)std::log(s));
      } else {
        double s = R.expsum(xr, d, m, yr);
        R.scale(yr, d, (float)(1.0 / s));
      }
    }
  });
}

void softmax_backward_f32(int64_t rows, int64_t d, const float* y, const float* gy, float* gx, bool log) {
  Row R;
  for_chunks(rows, grain_rows(d), chunk_rows(d), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const float *yr = y + r * d, *gr = gy + r * d;
      float* o = gx + r * d;
      if (log) {
        float c = (float)R.sum(gr, d);
        if (R.avx) logsoftmax_bw_v(yr, gr, o, d, c);
        else for (int64_t i = 0; i < d; i++) o[i] = gr[i] - std::exp(yr[i]) * c;
      } else {
        float c = (float)R.dot(gr, yr, d);
        if (R.avx) softmax_bw_v(yr, gr, o, d, c);
        else for (int64_t i = 0; i < d; i++) o[i] = yr[i] * (gr[i] - c);
      }
    }
  });
}

int64_t cross_entropy_check(int64_t n, int64_t v, const void* targets, bool t64, int64_t ignore) {
  for (int64_t i = 0; i < n; i++) {
    int64_t t = target_at(targets, t64, i);
    if (t != ignore && (t < 0 || t >= v)) return i;
  }
  return -1;
}

void cross_entropy_f32(int64_t n, int64_t v, const float* logits, const void* targets, bool t64, int64_t ignore,
                       float* losses, float* lse) {
  Row R;
  for_chunks(n, grain_rows(v), chunk_rows(v), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const float* xr = logits + r * v;
      float m = R.max(xr, v);
      double l = (double)m + std::log(R.expsum(xr, v, m, nullptr));
      int64_t t = target_at(targets, t64, r);
      lse[r] = (float)l;
      losses[r] = t == ignore ? 0.0f : (float)(l - (double)xr[t]);
    }
  });
}

void cross_entropy_backward_f32(int64_t n, int64_t v, const float* logits, const void* targets, bool t64,
                                int64_t ignore, const float* lse, const float* grow, float* gx) {
  Row R;
  const bool nt = n * v * 4 >= (16 << 20);
  for_chunks(n, grain_rows(v), chunk_rows(v), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const float* xr = logits + r * v;
      float* o = gx + r * v;
      int64_t t = target_at(targets, t64, r);
      if (t == ignore) {
        std::memset(o, 0, (size_t)v * sizeof(float));
        continue;
      }
      float g = grow[r], l = lse[r];
      if (R.avx) nt ? ce_bw_v<true>(xr, o, v, l, g) : ce_bw_v<false>(xr, o, v, l, g);
      else for (int64_t i = 0; i < v; i++) o[i] = g * std::exp(xr[i] - l);
      o[t] -= g;
    }
  });
}

}  // namespace vk
