// AdamW, one fused pass over param, grad and both moments (memory-bound: 4 reads, 3 writes per element).
#include "kernels/optim.h"

#include <cmath>

#include "core/pool.h"
#include "kernels/split.h"
#include "kernels/vmath.h"

namespace vk {
namespace {

inline void adamw1(float& p, float g, float& m, float& v, const AdamWScalars& s) {
  p *= s.decay;
  m = m + s.one_m_b1 * (g - m);
  v = v * s.b2 + s.one_m_b2 * g * g;
  float denom = std::sqrt(v) / s.bc2_sqrt + s.eps;
  p -= s.step_size * (m / denom);
}

VK_AVX2 void adamw_avx2(int64_t n, float* p, const float* g, float* m, float* v, const AdamWScalars& s) {
  const __m256 decay = _mm256_set1_ps(s.decay), w1 = _mm256_set1_ps(s.one_m_b1), b2 = _mm256_set1_ps(s.b2),
               w2 = _mm256_set1_ps(s.one_m_b2), bc = _mm256_set1_ps(s.bc2_sqrt), eps = _mm256_set1_ps(s.eps),
               step = _mm256_set1_ps(s.step_size);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 P = _mm256_mul_ps(_mm256_loadu_ps(p + i), decay);
    __m256 G = _mm256_loadu_ps(g + i), M = _mm256_loadu_ps(m + i), V = _mm256_loadu_ps(v + i);
    M = _mm256_fmadd_ps(w1, _mm256_sub_ps(G, M), M);
    V = _mm256_fmadd_ps(_mm256_mul_ps(w2, G), G, _mm256_mul_ps(V, b2));
    __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(V), bc), eps);
    P = _mm256_fnmadd_ps(step, _mm256_div_ps(M, denom), P);
    _mm256_storeu_ps(p + i, P);
    _mm256_storeu_ps(m + i, M);
    _mm256_storeu_ps(v + i, V);
  }
  for (; i < n; i++) adamw1(p[i], g[i], m[i], v[i], s);
}

}  // namespace

void adamw_f32(int64_t n, float* p, const float* g, float* m, float* v, const AdamWScalars& s) {
  const bool avx = has_avx2();
  for_chunks(n, 16384, 65536, [&](int64_t b, int64_t e) {
    if (avx) return adamw_avx2(e - b, p + b, g + b, m + b, v + b, s);
    for (int64_t i = b; i < e; i++) adamw1(p[i], g[i], m[i], v[i], s);
  });
}

}  // namespace vk
