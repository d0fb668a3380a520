// Layer norm (SigLIP) and RMS norm (Llama) over the last axis, in f32 like transformers' LlamaRMSNorm.
// Forward: one memory pass over a row for the statistics (the row then sits in L1 for the centred second sum)
// and one for the output. Backward: one pass for the two row sums (and the gw/gb partials), one for gx.
// Rows are shared out over the pool. Layer norm and RMS norm share the code (LN = centred).
#include "kernels/norm.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu.h"
#include "core/pool.h"

namespace vk {
namespace {

constexpr int64_t kBlockRows = 64;  // rows per gw/gb partial sum

__attribute__((target("avx2,fma"))) inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Software prefetch ~2 KB ahead of the row stream (rows are walked one after another, so this runs into the
// next rows): the hardware prefetcher alone left a single thread at ~half of memcpy.
constexpr int kAhead = 2048;
inline void prefetch1(const float* p) { _mm_prefetch(reinterpret_cast<const char*>(p) + kAhead, _MM_HINT_T0); }
inline void prefetch2(const float* p) {
  _mm_prefetch(reinterpret_cast<const char*>(p) + kAhead, _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(p) + kAhead + 64, _MM_HINT_T0);
}

// ---- forward

template <bool LN>
void fwd_row_scalar(int64_t D, const float* x, const float* w, const float* b, float eps, float* y, float* mean,
                    float* rstd) {
  float m = 0.f;
  if (LN) {
    // one f32 accumulator over the row lost ~1e-3 of a 1000-offset row's mean (the vector path keeps 32 partial
    // sums); a double keeps the mean exact enough for the centred second sum below
    double s = 0.0;
    for (int64_t j = 0; j < D; j++) s += x[j];
    m = (float)(s / (double)D);
  }
  float ss = 0.f;
  for (int64_t j = 0; j < D; j++) ss += (x[j] - m) * (x[j] - m);
  const float rs = 1.f / std::sqrt(ss / (float)D + eps);
  for (int64_t j = 0; j < D; j++) y[j] = (x[j] - m) * rs * w[j] + (LN ? b[j] : 0.f);
  if (LN) *mean = m;
  *rstd = rs;
}

template <bool LN>
__attribute__((target("avx2,fma"))) void fwd_row_avx2(int64_t D, const float* x, const float* w, const float* b,
                                                       float eps, float* y, float* mean, float* rstd) {
  const int64_t D32 = D & ~(int64_t)31, D8 = D & ~(int64_t)7;
  float m = 0.f;
  if (LN) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t j = 0;
    for (; j < D32; j += 32) {
      prefetch2(x + j);
      a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + j));
      a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + j + 8));
      a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + j + 16));
      a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + j + 24));
    }
    for (; j < D8; j += 8) a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + j));
    float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; j < D; j++) s += x[j];
    m = s / (float)D;
  }
  const __m256 vm = _mm256_set1_ps(m);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t j = 0;
  for (; j < D32; j += 32) {
    if (!LN) prefetch2(x + j);
    __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + j), vm), d1 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vm);
    __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 16), vm), d3 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 24), vm);
    a0 = _mm256_fmadd_ps(d0, d0, a0);
    a1 = _mm256_fmadd_ps(d1, d1, a1);
    a2 = _mm256_fmadd_ps(d2, d2, a2);
    a3 = _mm256_fmadd_ps(d3, d3, a3);
  }
  for (; j < D8; j += 8) {
    __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + j), vm);
    a0 = _mm256_fmadd_ps(d0, d0, a0);
  }
  float ss = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; j < D; j++) ss += (x[j] - m) * (x[j] - m);
  const float rs = 1.f / std::sqrt(ss / (float)D + eps);
  const __m256 vr = _mm256_set1_ps(rs);
  j = 0;
  for (; j < D8; j += 8) {
    __m256 h = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm), vr);
    __m256 o = LN ? _mm256_fmadd_ps(h, _mm256_loadu_ps(w + j), _mm256_loadu_ps(b + j))
                  : _mm256_mul_ps(h, _mm256_loadu_ps(w + j));
    _mm256_storeu_ps(y + j, o);
  }
  for (; j < D; j++) y[j] = (x[j] - m) * rs * w[j] + (LN ? b[j] : 0.f);
  if (LN) *mean = m;
  *rstd = rs;
}

template <bool LN>
void forward(int64_t R, int64_t D, const float* x, const float* w, const float* b, float eps, float* y, float* mean,
             float* rstd) {
  if (R <= 0) return;
  std::vector<float> ones, zeros;
  if (!w) ones.assign((size_t)D, 1.f), w = ones.data();
  if (LN && !b) zeros.assign((size_t)D, 0.f), b = zeros.data();
  auto row = has_avx2() ? fwd_row_avx2<LN> : fwd_row_scalar<LN>;
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(D, 1));
  parallel_for(R, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) row(D, x + r * D, w, b, eps, y + r * D, LN ? mean + r : nullptr, rstd + r);
  });
}

// ---- backward. xh = (x - m) * rs, gh = gy * w; gx = rs * (gh - mean(gh) [LN only] - xh * mean(gh * xh)).
// pw/pb (may be null) accumulate gy * xh and gy.

template <bool LN>
void bwd_row_scalar(int64_t D, const float* x, const float* w, float m, float rs, const float* gy, float* gx,
                    float* pw, float* pb) {
  float sg = 0.f, sgx = 0.f;
  for (int64_t j = 0; j < D; j++) {
    const float xh = (x[j] - m) * rs, gh = gy[j] * w[j];
    sg += gh;
    sgx += gh * xh;
    if (pw) pw[j] += gy[j] * xh;
    if (pb) pb[j] += gy[j];
  }
  const float a = LN ? sg / (float)D : 0.f, c = sgx / (float)D;
  for (int64_t j = 0; j < D; j++) gx[j] = rs * (gy[j] * w[j] - a - (x[j] - m) * rs * c);
}

template <bool LN>
__attribute__((target("avx2,fma"))) void bwd_row_avx2(int64_t D, const float* x, const float* w, float m, float rs,
                                                       const float* gy, float* gx, float* pw, float* pb) {
  const int64_t D8 = D & ~(int64_t)7;
  const __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(rs);
  __m256 sg0 = _mm256_setzero_ps(), sg1 = sg0, sx0 = sg0, sx1 = sg0;
  int64_t j = 0;
  // two accumulators each, unrolled by 16
  for (; j + 16 <= D8; j += 16) {
    prefetch1(x + j);
    prefetch1(gy + j);
    __m256 g0 = _mm256_loadu_ps(gy + j), g1 = _mm256_loadu_ps(gy + j + 8);
    __m256 h0 = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm), vr);
    __m256 h1 = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vm), vr);
    __m256 q0 = _mm256_mul_ps(g0, _mm256_loadu_ps(w + j)), q1 = _mm256_mul_ps(g1, _mm256_loadu_ps(w + j + 8));
    if (LN) sg0 = _mm256_add_ps(sg0, q0), sg1 = _mm256_add_ps(sg1, q1);
    sx0 = _mm256_fmadd_ps(q0, h0, sx0);
    sx1 = _mm256_fmadd_ps(q1, h1, sx1);
    if (pw) {
      _mm256_storeu_ps(pw + j, _mm256_fmadd_ps(g0, h0, _mm256_loadu_ps(pw + j)));
      _mm256_storeu_ps(pw + j + 8, _mm256_fmadd_ps(g1, h1, _mm256_loadu_ps(pw + j + 8)));
    }
    if (pb) {
      _mm256_storeu_ps(pb + j, _mm256_add_ps(g0, _mm256_loadu_ps(pb + j)));
      _mm256_storeu_ps(pb + j + 8, _mm256_add_ps(g1, _mm256_loadu_ps(pb + j + 8)));
    }
  }
  for (; j < D8; j += 8) {
    __m256 g0 = _mm256_loadu_ps(gy + j);
    __m256 h0 = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm), vr);
    __m256 q0 = _mm256_mul_ps(g0, _mm256_loadu_ps(w + j));
    if (LN) sg0 = _mm256_add_ps(sg0, q0);
    sx0 = _mm256_fmadd_ps(q0, h0, sx0);
    if (pw) _mm256_storeu_ps(pw + j, _mm256_fmadd_ps(g0, h0, _mm256_loadu_ps(pw + j)));
    if (pb) _mm256_storeu_ps(pb + j, _mm256_add_ps(g0, _mm256_loadu_ps(pb + j)));
  }
  float sg = LN ? hsum(_mm256_add_ps(sg0, sg1)) : 0.f, sgx = hsum(_mm256_add_ps(sx0, sx1));
  for (; j < D; j++) {
    const float xh = (x[j] - m) * rs, gh = gy[j] * w[j];
    sg += gh;
    sgx += gh * xh;
    if (pw) pw[j] += gy[j] * xh;
    if (pb) pb[j] += gy[j];
  }
  const float a = LN ? sg / (float)D : 0.f, c = sgx / (float)D;
  const __m256 va = _mm256_set1_ps(a), vc = _mm256_set1_ps(c);
  j = 0;
  for (; j < D8; j += 8) {
    __m256 h = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm), vr);
    __m256 q = _mm256_mul_ps(_mm256_loadu_ps(gy + j), _mm256_loadu_ps(w + j));
    __m256 t = _mm256_fnmadd_ps(h, vc, _mm256_sub_ps(q, va));  // q - a - h*c
    _mm256_storeu_ps(gx + j, _mm256_mul_ps(vr, t));
  }
  for (; j < D; j++) gx[j] = rs * (gy[j] * w[j] - a - (x[j] - m) * rs * c);
}

template <bool LN>
void backward(int64_t R, int64_t D, const float* x, const float* w, const float* mean, const float* rstd,
              const float* gy, float* gx, float* gw, float* gb) {
  if (!LN) gb = nullptr;
  if (R <= 0) {
    if (gw) std::fill(gw, gw + D, 0.f);
    if (gb) std::fill(gb, gb + D, 0.f);
    return;
  }
  std::vector<float> ones;
  if (!w) ones.assign((size_t)D, 1.f), w = ones.data();
  auto row = has_avx2() ? bwd_row_avx2<LN> : bwd_row_scalar<LN>;
  auto rows = [&](int64_t r0, int64_t r1, float* pw, float* pb) {
    for (int64_t r = r0; r < r1; r++)
      row(D, x + r * D, w, LN ? mean[r] : 0.f, rstd[r], gy + r * D, gx + r * D, pw, pb);
  };
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(D, 1));
  if (!gw && !gb) {
    parallel_for(R, grain, [&](int64_t r0, int64_t r1) { rows(r0, r1, nullptr, nullptr); });
    return;
  }
  // Fixed blocks of rows, each with its own partial sums; blocks are then summed in order.
  const int64_t nblk = (R + kBlockRows - 1) / kBlockRows;
  std::vector<float> pw(gw ? (size_t)(nblk * D) : 0, 0.f), pb(gb ? (size_t)(nblk * D) : 0, 0.f);
  parallel_for(nblk, std::max<int64_t>(1, grain / kBlockRows), [&](int64_t b0, int64_t b1) {
    for (int64_t k = b0; k < b1; k++)
      rows(k * kBlockRows, std::min(R, (k + 1) * kBlockRows), gw ? pw.data() + k * D : nullptr,
           gb ? pb.data() + k * D : nullptr);
  });
  auto reduce = [&](const std::vector<float>& p, float* out) {
    parallel_for(D, 1024, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; j++) out[j] = p[(size_t)j];
      for (int64_t k = 1; k < nblk; k++) {
        const float* src = p.data() + k * D;
        for (int64_t j = j0; j < j1; j++) out[j] += src[j];
      }
    });
  };
  if (gw) reduce(pw, gw);
  if (gb) reduce(pb, gb);
}

}  // namespace

void layer_norm_forward(int64_t R, int64_t D, const float* x, const float* w, const float* b, float eps, float* y,
                        float* mean, float* rstd) {
  forward<true>(R, D, x, w, b, eps, y, mean, rstd);
}
void layer_norm_backward(int64_t R, int64_t D, const float* x, const float* w, const float* mean, const float* rstd,
                         const float* gy, float* gx, float* gw, float* gb) {
  backward<true>(R, D, x, w, mean, rstd, gy, gx, gw, gb);
}
void rms_norm_forward(int64_t R, int64_t D, const float* x, const float* w, float eps, float* y, float* rstd) {
  forward<false>(R, D, x, w, nullptr, eps, y, nullptr, rstd);
}
void rms_norm_backward(int64_t R, int64_t D, const float* x, const float* w, const float* rstd, const float* gy,
                       float* gx, float* gw) {
  backward<false>(R, D, x, w, nullptr, rstd, gy, gx, gw, nullptr);
}

}  // namespace vk
