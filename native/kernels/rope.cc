// Rotary position embedding: a cos/sin table per position made once per call (float32 angle, cos/sin in double,
// rounded to float32), then every head's rows rotated.
// The rotation is computed as separate products and a sum (x*cos - x2*sin, no fused multiply-add), which is
// what transformers' q * cos + rotate_half(q) * sin does in float32.
#include "kernels/rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VK_X86 1
#endif

#include "core/cpu.h"
#include "core/pool.h"

namespace vk {
namespace {

void rotate_scalar(const float* x, const float* c, const float* s, int64_t half, float* o) {
  for (int64_t i = 0; i < half; i++) {
    const float x1 = x[i], x2 = x[i + half];
    const float a = x1 * c[i], b = x2 * s[i], e = x2 * c[i], f = x1 * s[i];
    o[i] = a - b;
    o[i + half] = e + f;
  }
}

#ifdef VK_X86
// AVX2 only (no FMA in the target), so the compiler cannot contract the products into fused operations.
__attribute__((target("avx2"))) void rotate_avx2(const float* x, const float* c, const float* s, int64_t half,
                                                 float* o) {
  int64_t i = 0;
  for (; i + 8 <= half; i += 8) {
    const __m256 x1 = _mm256_loadu_ps(x + i), x2 = _mm256_loadu_ps(x + i + half);
    const __m256 vc = _mm256_loadu_ps(c + i), vs = _mm256_loadu_ps(s + i);
    _mm256_storeu_ps(o + i, _mm256_sub_ps(_mm256_mul_ps(x1, vc), _mm256_mul_ps(x2, vs)));
    _mm256_storeu_ps(o + i + half, _mm256_add_ps(_mm256_mul_ps(x2, vc), _mm256_mul_ps(x1, vs)));
  }
  for (; i < half; i++) {
    const float x1 = x[i], x2 = x[i + half];
    const float a = x1 * c[i], b = x2 * s[i], e = x2 * c[i], f = x1 * s[i];
    o[i] = a - b;
    o[i + half] = e + f;
  }
}

// cos and sin of the float32 angles inv_freq[i] * pos in double, 4 at a time: x = k (pi/2) + r with k*P1 exact
// (P1 holds the first 33 bits of pi/2, |k| < 2^20), r = (x - k P1) - k P1t, then the Taylor-like polynomials of
// fdlibm's kernels on |r| <= pi/4 (error ~1e-16, far below the float32 rounding that follows) and the quadrant.
// Angles beyond 1e6 go to libm.
__attribute__((target("avx2,fma"))) void table_avx2(const float* inv_freq, float fp, int64_t half, float* c, float* s,
                                                    bool inverse) {
  const __m256d two_over_pi = _mm256_set1_pd(6.36619772367581382433e-01);
  const __m256d p1 = _mm256_set1_pd(1.57079632673412561417e+00), p1t = _mm256_set1_pd(6.07710050650619224932e-11);
  const __m256d one = _mm256_set1_pd(1.0), half_d = _mm256_set1_pd(0.5), zero = _mm256_setzero_pd();
  const __m256d sign = _mm256_set1_pd(-0.0);
  const __m256 vfp = _mm256_set1_ps(fp);
  int64_t i = 0;
  for (; i + 4 <= half; i += 4) {
    const __m128 a32 = _mm_mul_ps(_mm_loadu_ps(inv_freq + i), _mm256_castps256_ps128(vfp));  // float32 angle
    const __m256d x = _mm256_cvtps_pd(a32);
    const __m256d ax = _mm256_andnot_pd(sign, x);
    if (_mm256_movemask_pd(_mm256_cmp_pd(ax, _mm256_set1_pd(1e6), _CMP_GT_OQ))) {
      float a[4];
      _mm_storeu_ps(a, a32);
      for (int j = 0; j < 4; j++) {
        c[i + j] = (float)std::cos((double)a[j]);
        const float sn = (float)std::sin((double)a[j]);
        s[i + j] = inverse ? -sn : sn;
      }
      continue;
    }
    const __m256d k = _mm256_round_pd(_mm256_mul_pd(x, two_over_pi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256d r = _mm256_fnmadd_pd(k, p1t, _mm256_fnmadd_pd(k, p1, x));
    const __m256d z = _mm256_mul_pd(r, r);
    __m256d ps = _mm256_set1_pd(1.58969099521155010221e-10);
    ps = _mm256_fmadd_pd(ps, z, _mm256_set1_pd(-2.50507602534068634195e-08));
    ps = _mm256_fmadd_pd(ps, z, _mm256_set1_pd(2.75573137070700676789e-06));
    ps = _mm256_fmadd_pd(ps, z, _mm256_set1_pd(-1.98412698298579493134e-04));
    ps = _mm256_fmadd_pd(ps, z, _mm256_set1_pd(8.33333333332248946124e-03));
    ps = _mm256_fmadd_pd(ps, z, _mm256_set1_pd(-1.66666666666666324348e-01));
    const __m256d sr = _mm256_fmadd_pd(_mm256_mul_pd(r, z), ps, r);
    __m256d pc = _mm256_set1_pd(-1.13596475577881948265e-11);
    pc = _mm256_fmadd_pd(pc, z, _mm256_set1_pd(2.08757232129817482790e-09));
    pc = _mm256_fmadd_pd(pc, z, _mm256_set1_pd(-2.75573143513906633035e-07));
    pc = _mm256_fmadd_pd(pc, z, _mm256_set1_pd(2.48015872894767294178e-05));
    pc = _mm256_fmadd_pd(pc, z, _mm256_set1_pd(-1.38888888888741095749e-03));
    pc = _mm256_fmadd_pd(pc, z, _mm256_set1_pd(4.16666666666666019037e-02));
    const __m256d cr = _mm256_fmadd_pd(_mm256_mul_pd(z, z), pc, _mm256_fnmadd_pd(half_d, z, one));
    // quadrant q = k mod 4: sin x = (s, c, -s, -c)[q], cos x = (c, -s, -c, s)[q]
    const __m128i q = _mm256_cvtpd_epi32(k);
    const __m256d swap = _mm256_cmp_pd(_mm256_cvtepi32_pd(_mm_and_si128(q, _mm_set1_epi32(1))), zero, _CMP_NEQ_OQ);
    const __m256d neg_s = _mm256_cmp_pd(_mm256_cvtepi32_pd(_mm_and_si128(q, _mm_set1_epi32(2))), zero, _CMP_NEQ_OQ);
    const __m256d neg_c = _mm256_cmp_pd(
        _mm256_cvtepi32_pd(_mm_and_si128(_mm_add_epi32(q, _mm_set1_epi32(1)), _mm_set1_epi32(2))), zero, _CMP_NEQ_OQ);
    __m256d sv = _mm256_blendv_pd(sr, cr, swap), cv = _mm256_blendv_pd(cr, sr, swap);
    sv = _mm256_xor_pd(sv, _mm256_and_pd(neg_s, sign));
    cv = _mm256_xor_pd(cv, _mm256_and_pd(neg_c, sign));
    if (inverse) sv = _mm256_xor_pd(sv, sign);
    _mm_storeu_ps(c + i, _mm256_cvtpd_ps(cv));
    _mm_storeu_ps(s + i, _mm256_cvtpd_ps(sv));
  }
  for (; i < half; i++) {
    const float angle = inv_freq[i] * fp;
    c[i] = (float)std::cos((double)angle);
    const float sn = (float)std::sin((double)angle);
    s[i] = inverse ? -sn : sn;
  }
}
#endif

void table_scalar(const float* inv_freq, float fp, int64_t half, float* c, float* s, bool inverse) {
  for (int64_t i = 0; i < half; i++) {
    const float angle = inv_freq[i] * fp;  // float32 product, as transformers' f32 matmul of the two
    c[i] = (float)std::cos((double)angle);
    const float sn = (float)std::sin((double)angle);
    s[i] = inverse ? -sn : sn;
  }
}

using TableFn = void (*)(const float*, float, int64_t, float*, float*, bool);
TableFn table_fn() {
#ifdef VK_X86
  return has_avx2() ? table_avx2 : table_scalar;
#else
  return table_scalar;
#endif
}

using RotateFn = void (*)(const float*, const float*, const float*, int64_t, float*);
RotateFn rotate_fn() {
#ifdef VK_X86
  return has_avx2() ? rotate_avx2 : rotate_scalar;
#else
  return rotate_scalar;
#endif
}

}  // namespace

void rope(int64_t B, int64_t H, int64_t T, int64_t D, const float* x, int64_t sb, int64_t sh, int64_t st,
          const void* positions, bool pos64, const float* inv_freq, bool inverse, float* out) {
  const int64_t half = D / 2, BT = B * T;
  if (B * H * T * D == 0) return;
  auto pos_at = [&](int64_t u) -> int64_t {
    return pos64 ? static_cast<const int64_t*>(positions)[u] : static_cast<const int32_t*>(positions)[u];
  };
  // One table row per distinct position when the positions span a short range (batch rows share them), else one
  // per (b, t).
  int64_t lo = pos_at(0), hi = lo;
  for (int64_t u = 1; u < BT; u++) lo = std::min(lo, pos_at(u)), hi = std::max(hi, pos_at(u));
  const bool by_range = hi - lo + 1 <= BT;
  const int64_t nrows = by_range ? hi - lo + 1 : BT;
  std::vector<float> table(nrows * 2 * half);  // row: cos[half], sin[half]
  const TableFn tab = table_fn();
  parallel_for(nrows, 64, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; u++) {
      float* c = table.data() + u * 2 * half;
      tab(inv_freq, (float)(by_range ? lo + u : pos_at(u)), half, c, c + half, inverse);
    }
  });
  const RotateFn rot = rotate_fn();
  parallel_for(B * H * T, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t t = r % T, bh = r / T, h = bh % H, b = bh / H;
      const int64_t row = by_range ? pos_at(b * T + t) - lo : b * T + t;
      const float* c = table.data() + row * 2 * half;
      rot(x + b * sb + h * sh + t * st, c, c + half, half, out + r * D);
    }
  });
}

}  // namespace vk
