// Row kernels: gathers run one row per item over the pool; scatters split the columns across threads so that
// each output element is updated by one thread in index order (deterministic, no atomics).
#include "kernels/rows.h"

#include <algorithm>
#include <cstring>

#include "core/pool.h"
#include "kernels/vmath.h"

namespace vk {
namespace {

int64_t row_grain(int64_t d) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(d, 1)); }

VK_AVX2 void bf16_row_avx2(const uint16_t* s, float* o, int64_t d) {
  int64_t j = 0;
  for (; j + 8 <= d; j += 8) {
    __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + j)));
    _mm256_storeu_ps(o + j, _mm256_castsi256_ps(_mm256_slli_epi32(h, 16)));
  }
  for (; j < d; j++) o[j] = bf16_to_f32(s[j]);
}
__attribute__((target("avx2,fma,f16c"))) void f16_row_f16c(const uint16_t* s, float* o, int64_t d) {
  int64_t j = 0;
  for (; j + 8 <= d; j += 8)
    _mm256_storeu_ps(o + j, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + j))));
  for (; j < d; j++) o[j] = f16_to_f32(s[j]);
}
bool has_f16c() { return has_avx2() && cpu_has_f16c(); }

VK_AVX2 void add_row_avx2(float* o, const float* g, int64_t d) {
  int64_t j = 0;
  for (; j + 8 <= d; j += 8) _mm256_storeu_ps(o + j, _mm256_add_ps(_mm256_loadu_ps(o + j), _mm256_loadu_ps(g + j)));
  for (; j < d; j++) o[j] += g[j];
}

}  // namespace

int64_t index_at(const void* idx, bool i64, int64_t i) {
  return i64 ? static_cast<const int64_t*>(idx)[i] : (int64_t) static_cast<const int32_t*>(idx)[i];
}

int64_t rows_check(int64_t n, const void* idx, bool i64, int64_t limit) {
  for (int64_t i = 0; i < n; i++) {
    int64_t t = index_at(idx, i64, i);
    if (t < 0 || t >= limit) return i;
  }
  return -1;
}

void embedding_gather(DT wdt, int64_t d, const void* w, int64_t n, const void* idx, bool i64, float* out) {
  const bool avx = has_avx2(), f16c = has_f16c();
  parallel_for(n, row_grain(d), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      int64_t r = index_at(idx, i64, i);
      float* o = out + i * d;
      switch (wdt) {
        case DT::F32:
          std::memcpy(o, static_cast<const float*>(w) + r * d, (size_t)d * 4);
          break;
        case DT::BF16: {
          const uint16_t* s = static_cast<const uint16_t*>(w) + r * d;
          if (avx) bf16_row_avx2(s, o, d);
          else for (int64_t j = 0; j < d; j++) o[j] = bf16_to_f32(s[j]);
          break;
        }
        case DT::F16: {
          const uint16_t* s = static_cast<const uint16_t*>(w) + r * d;
          if (f16c) f16_row_f16c(s, o, d);
          else for (int64_t j = 0; j < d; j++) o[j] = f16_to_f32(s[j]);
          break;
        }
        default:
          break;  // refused by the caller
      }
    }
  });
}

void embedding_scatter_add(int64_t n, const void* idx, bool i64, int64_t d, const float* gy, int64_t vocab,
                           float* out) {
  parallel_for(vocab, row_grain(d) * 4, [&](int64_t b, int64_t e) {
    std::memset(out + b * d, 0, (size_t)((e - b) * d) * 4);
  });
  const bool avx = has_avx2();
  // columns in blocks of 16 so each thread's slice stays vector-aligned in length
  const int64_t blocks = (d + 15) / 16;
  parallel_for(blocks, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    int64_t c0 = b * 16, c1 = std::min(d, e * 16);
    for (int64_t i = 0; i < n; i++) {
      int64_t r = index_at(idx, i64, i);
      float* o = out + r * d + c0;
      const float* g = gy + i * d + c0;
      if (avx) add_row_avx2(o, g, c1 - c0);
      else for (int64_t j = 0; j < c1 - c0; j++) o[j] += g[j];
    }
  });
}

void index_copy(int elem, int64_t d, void* dst, int64_t m, const void* idx, bool i64, const void* src) {
  const int64_t row = d * elem;
  char* D = static_cast<char*>(dst);
  const char* S = static_cast<const char*>(src);
  // byte columns split across threads (index order kept within each slice, so the last duplicate wins)
  const int64_t blocks = (row + 63) / 64;
  parallel_for(blocks, std::max<int64_t>(1, 4096 / std::max<int64_t>(m, 1)), [&](int64_t b, int64_t e) {
    int64_t c0 = b * 64, c1 = std::min(row, e * 64);
    for (int64_t i = 0; i < m; i++)
      std::memcpy(D + index_at(idx, i64, i) * row + c0, S + i * row + c0, (size_t)(c1 - c0));
  });
}

}  // namespace vk
