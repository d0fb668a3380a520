#include "kernels/bench.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/pool.h"

namespace vk {

void memcpy_pool(void* dst, const void* src, int64_t bytes) {
  const int64_t units = (bytes + 4095) / 4096;  // page-sized pieces
  parallel_for(units, 16, [&](int64_t b, int64_t e) {
    const int64_t lo = b * 4096, hi = std::min(bytes, e * 4096);
    std::memcpy(static_cast<char*>(dst) + lo, static_cast<const char*>(src) + lo, (size_t)(hi - lo));
  });
}

namespace {
__attribute__((target("avx2"))) double sum_avx2(const float* p, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + i + 24));
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  double s = 0;
  for (float v : t) s += v;
  for (; i < n; i++) s += p[i];
  return s;
}
}  // namespace

double read_sum_pool(const float* src, int64_t n) {
  std::vector<double> part((size_t)num_threads() + 1, 0.0);
  const int64_t units = (n + 1023) / 1024;
  parallel_tasks(num_threads(), [&](int64_t t) {
    const int64_t nt = num_threads();
    const int64_t lo = std::min(n, units * t / nt * 1024), hi = std::min(n, units * (t + 1) / nt * 1024);
    double s = 0;
    if (__builtin_cpu_supports("avx2")) s = sum_avx2(src + lo, hi - lo);
    else
      for (int64_t i = lo; i < hi; i++) s += src[i];
    part[(size_t)t] = s;
  });
  double s = 0;
  for (double v : part) s += v;
  return s;
}

}  // namespace vk
