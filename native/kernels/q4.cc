// ggml's Q4_0 blocks (see q4.h): 18 bytes per 32 values, an fp16 scale d then 16 bytes holding element j in the
// low nibble and element j + 16 in the high nibble; value = d * (nibble - 8). As for Q8_0 (qmatmul.cc), a block's
// dot is summed unscaled and multiplied by d once: C = Σ_b d_b · Σ_j x_j (q_bj - 8). The AVX2 path widens the
// nibbles in registers; the scalar twin sums in the same per-lane order only up to reassociation (the tests hold
// both to the product with the dequantized weight within f32 rounding).
#include <immintrin.h>

#include <cstring>

#include "core/cpu.h"
#include "kernels/layout.h"
#include "kernels/q4.h"

namespace vk {
namespace {

constexpr int64_t kValues = 32, kBytes = 18;

inline float scale_of(const uint8_t* blk) {
  uint16_t h;
  std::memcpy(&h, blk, 2);
  return f16_to_f32(h);
}

__attribute__((target("avx2,fma,f16c"))) inline float scale_f16c(const uint8_t* blk) {
  uint16_t h;
  std::memcpy(&h, blk, 2);
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

// The 32 values (q - 8) of one block as four vectors of 8 floats, in element order.
__attribute__((target("avx2,fma"))) inline void widen(const uint8_t* qs, __m256 q[4]) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m4 = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
  const __m128i lo = _mm_sub_epi8(_mm_and_si128(raw, m4), eight);
  const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), eight);
  q[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
  q[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
  q[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
  q[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

void decode_scalar(const uint8_t* row, int64_t b0, int64_t b1, float* dst) {
  for (int64_t b = b0; b < b1; b++) {
    const uint8_t* blk = row + b * kBytes;
    const float d = scale_of(blk);
    float* o = dst + (b - b0) * kValues;
    for (int j = 0; j < 16; j++) {
      o[j] = d * (float)((blk[2 + j] & 15) - 8);
      o[j + 16] = d * (float)((blk[2 + j] >> 4) - 8);
    }
  }
}

__attribute__((target("avx2,fma,f16c"))) void decode_avx2(const uint8_t* row, int64_t b0, int64_t b1, float* dst) {
  for (int64_t b = b0; b < b1; b++) {
    const uint8_t* blk = row + b * kBytes;
    const __m256 d = _mm256_set1_ps(scale_f16c(blk));
    __m256 q[4];
    widen(blk + 2, q);
    float* o = dst + (b - b0) * kValues;
    for (int j = 0; j < 4; j++) _mm256_storeu_ps(o + 8 * j, _mm256_mul_ps(q[j], d));
  }
}

template <int MR>
void dot_scalar(const float* A, int64_t lda, int64_t K, const uint8_t* W, int64_t n0, int64_t n1, const float* bias,
                float* C, int64_t ldc) {
  const int64_t nb = K / kValues, rb = nb * kBytes;
  for (int64_t n = n0; n < n1; n++) {
    const uint8_t* row = W + n * rb;
    float acc[MR] = {};
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t* blk = row + b * kBytes;
      const float d = scale_of(blk);
      for (int m = 0; m < MR; m++) {
        const float* x = A + m * lda + b * kValues;
        float s = 0.f;
        for (int j = 0; j < 16; j++) s += x[j] * (float)((blk[2 + j] & 15) - 8) + x[j + 16] * (float)((blk[2 + j] >> 4) - 8);
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
__attribute__((target("avx2,fma,f16c"))) void dot_avx2(const float* A, int64_t lda, int64_t K, const uint8_t* W,
                                                       int64_t n0, int64_t n1, const float* bias, float* C,
                                                       int64_t ldc) {
  const int64_t nb = K / kValues, rb = nb * kBytes;
  for (int64_t n = n0; n < n1; n++) {
    const uint8_t* row = W + n * rb;
    __m256 acc[MR];
    for (int m = 0; m < MR; m++) acc[m] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t* blk = row + b * kBytes;
      // one sequential stream of weight bytes: ask for it 1 KB ahead
      _mm_prefetch(reinterpret_cast<const char*>(blk) + 1024, _MM_HINT_T0);
      const __m256 d = _mm256_set1_ps(scale_f16c(blk));
      __m256 q[4];
      widen(blk + 2, q);
      for (int m = 0; m < MR; m++) {
        const float* x = A + m * lda + b * kValues;
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
DotFn pick() {
  return has_avx2() && cpu_has_f16c() ? dot_avx2<MR> : dot_scalar<MR>;
}

}  // namespace

void q4_0_decode(const uint8_t* row, int64_t b0, int64_t b1, float* dst) {
  if (has_avx2() && cpu_has_f16c()) decode_avx2(row, b0, b1, dst);
  else decode_scalar(row, b0, b1, dst);
}

void q4_0_dot(int64_t M, const float* A, int64_t lda, int64_t K, const uint8_t* W, int64_t n0, int64_t n1,
              const float* bias, float* C, int64_t ldc) {
  DotFn f;
  switch (M) {
    case 1: f = pick<1>(); break;
    case 2: f = pick<2>(); break;
    case 3: f = pick<3>(); break;
    case 4: f = pick<4>(); break;
    case 5: f = pick<5>(); break;
    case 6: f = pick<6>(); break;
    case 7: f = pick<7>(); break;
    default: f = pick<8>(); break;
  }
  f(A, lda, K, W, n0, n1, bias, C, ldc);
}

}  // namespace vk
