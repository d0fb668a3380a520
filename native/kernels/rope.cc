// Rotary position embedding: a cos/sin table per (b, t) made once per call, then every head's rows rotated.
// The rotation is computed as separate products and a sum (x*cos - x2*sin, no fused multiply-add), which is
// what transformers' q * cos + rotate_half(q) * sin does in float32.
#include "kernels/rope.h"

#include <cmath>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VK_X86 1
#endif

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
#endif

using RotateFn = void (*)(const float*, const float*, const float*, int64_t, float*);
RotateFn rotate_fn() {
#ifdef VK_X86
  static const RotateFn f = __builtin_cpu_supports("avx2") ? rotate_avx2 : rotate_scalar;
  return f;
#else
  return rotate_scalar;
#endif
}

}  // namespace

void rope(int64_t B, int64_t H, int64_t T, int64_t D, const float* x, int64_t sb, int64_t sh, int64_t st,
          const void* positions, bool pos64, const float* inv_freq, bool inverse, float* out) {
  const int64_t half = D / 2, BT = B * T;
  if (B * H * T * D == 0) return;
  // table[(b*T + t)] = cos[half], sin[half]
  std::vector<float> table(BT * 2 * half);
  parallel_for(BT, 64, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; u++) {
      const int64_t pos = pos64 ? static_cast<const int64_t*>(positions)[u] : static_cast<const int32_t*>(positions)[u];
      const float fp = (float)pos;
      float* c = table.data() + u * 2 * half;
      float* s = c + half;
      for (int64_t i = 0; i < half; i++) {
        const float angle = inv_freq[i] * fp;  // float32 product, as transformers' f32 matmul of the two
        c[i] = (float)std::cos((double)angle);
        const float sn = (float)std::sin((double)angle);
        s[i] = inverse ? -sn : sn;
      }
    }
  });
  const RotateFn rot = rotate_fn();
  parallel_for(B * H * T, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t t = r % T, bh = r / T, h = bh % H, b = bh / H;
      const float* c = table.data() + (b * T + t) * 2 * half;
      rot(x + b * sb + h * sh + t * st, c, c + half, half, out + r * D);
    }
  });
}

}  // namespace vk
