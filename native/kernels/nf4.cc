// bitsandbytes' NF4 blocks (see q4.h): 64 values per block, two 4-bit codes a byte (the first element of a pair in
// the high nibble), value = code[c] * absmax. The code table is bitsandbytes' get_4bit_type("nf4"). Each block's
// 16-entry table lookup is done in registers: the nibbles, put back in element order, index two 8-float halves of
// the table (permutevar8x32), and bit 3 picks the half. The block's codes are scaled by its absmax first, so each
// weight value is the exact f32 of the dequantized weight.
#include <immintrin.h>

#include "core/cpu.h"
#include "kernels/q4.h"

namespace vk {
namespace {

constexpr int64_t kValues = 64;

alignas(32) const float kCode[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f,
    1.0f};

// The code values of 16 packed bytes (32 elements) as four vectors of 8 floats in element order, times a.
__attribute__((target("avx2,fma"))) inline void widen(const uint8_t* qs, __m256 a, __m256 q[4]) {
  const __m256 tlo = _mm256_load_ps(kCode), thi = _mm256_load_ps(kCode + 8);
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m4 = _mm_set1_epi8(0x0f);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m4), lo = _mm_and_si128(raw, m4);
  // element 2i is the high nibble of byte i, element 2i + 1 its low nibble
  const __m128i e0 = _mm_unpacklo_epi8(hi, lo), e1 = _mm_unpackhi_epi8(hi, lo);
  const __m128i parts[4] = {e0, _mm_srli_si128(e0, 8), e1, _mm_srli_si128(e1, 8)};
  for (int i = 0; i < 4; i++) {
    const __m256i idx = _mm256_cvtepu8_epi32(parts[i]);
    const __m256 vlo = _mm256_permutevar8x32_ps(tlo, idx), vhi = _mm256_permutevar8x32_ps(thi, idx);
    const __m256 v = _mm256_blendv_ps(vlo, vhi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
    q[i] = _mm256_mul_ps(v, a);
  }
}

__attribute__((target("avx2,fma"))) inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

void decode_scalar(const Nf4View& v, int64_t K, int64_t n, int64_t k0, int64_t k1, float* dst) {
  const int64_t nbr = K / kValues;
  const uint8_t* row = v.codes + n * (K / 2);
  for (int64_t k = k0; k < k1; k += kValues) {
    const float a = nf4_absmax(v, n * nbr + k / kValues);
    for (int64_t j = 0; j < kValues; j += 2) {
      const uint8_t c = row[(k + j) / 2];
      dst[k - k0 + j] = kCode[c >> 4] * a;
      dst[k - k0 + j + 1] = kCode[c & 15] * a;
    }
  }
}

__attribute__((target("avx2,fma"))) void decode_avx2(const Nf4View& v, int64_t K, int64_t n, int64_t k0, int64_t k1,
                                                     float* dst) {
  const int64_t nbr = K / kValues;
  const uint8_t* row = v.codes + n * (K / 2);
  for (int64_t k = k0; k < k1; k += kValues) {
    const __m256 a = _mm256_set1_ps(nf4_absmax(v, n * nbr + k / kValues));
    __m256 q[4];
    for (int h = 0; h < 2; h++) {
      widen(row + k / 2 + 16 * h, a, q);
      for (int i = 0; i < 4; i++) _mm256_storeu_ps(dst + k - k0 + 32 * h + 8 * i, q[i]);
    }
  }
}

template <int MR>
void dot_scalar(const float* A, int64_t lda, int64_t K, const Nf4View& W, int64_t n0, int64_t n1, const float* bias,
                float* C, int64_t ldc) {
  const int64_t nbr = K / kValues;
  for (int64_t n = n0; n < n1; n++) {
    const uint8_t* row = W.codes + n * (K / 2);
    float acc[MR] = {};
    for (int64_t b = 0; b < nbr; b++) {
      const float a = nf4_absmax(W, n * nbr + b);
      const uint8_t* blk = row + b * (kValues / 2);
      for (int64_t j = 0; j < kValues; j += 2) {
        const float w0 = kCode[blk[j / 2] >> 4] * a, w1 = kCode[blk[j / 2] & 15] * a;
        for (int m = 0; m < MR; m++) {
          const float* x = A + m * lda + b * kValues + j;
          acc[m] += x[0] * w0 + x[1] * w1;
        }
      }
    }
    for (int m = 0; m < MR; m++) C[m * ldc + n] = bias ? acc[m] + bias[n] : acc[m];
  }
}

template <int MR>
__attribute__((target("avx2,fma"))) void dot_avx2(const float* A, int64_t lda, int64_t K, const Nf4View& W, int64_t n0,
                                                  int64_t n1, const float* bias, float* C, int64_t ldc) {
  const int64_t nbr = K / kValues;
  for (int64_t n = n0; n < n1; n++) {
    const uint8_t* row = W.codes + n * (K / 2);
    __m256 acc[MR];
    for (int m = 0; m < MR; m++) acc[m] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nbr; b++) {
      const uint8_t* blk = row + b * (kValues / 2);
      _mm_prefetch(reinterpret_cast<const char*>(blk) + 1024, _MM_HINT_T0);
      const __m256 a = _mm256_set1_ps(nf4_absmax(W, n * nbr + b));
      for (int h = 0; h < 2; h++) {
        __m256 q[4];
        widen(blk + 16 * h, a, q);
        for (int m = 0; m < MR; m++) {
          const float* x = A + m * lda + b * kValues + 32 * h;
          acc[m] = _mm256_fmadd_ps(q[0], _mm256_loadu_ps(x), acc[m]);
          acc[m] = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(x + 8), acc[m]);
          acc[m] = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(x + 16), acc[m]);
          acc[m] = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(x + 24), acc[m]);
        }
      }
    }
    for (int m = 0; m < MR; m++) {
      const float s = hsum(acc[m]);
      C[m * ldc + n] = bias ? s + bias[n] : s;
    }
  }
}

using DotFn = void (*)(const float*, int64_t, int64_t, const Nf4View&, int64_t, int64_t, const float*, float*, int64_t);

template <int MR>
DotFn pick() {
  return has_avx2() ? dot_avx2<MR> : dot_scalar<MR>;
}

}  // namespace

float nf4_absmax(const Nf4View& v, int64_t g) {
  if (!v.qabsmax) return v.absmax[g];
  // two roundings, as torch computes map[q] * absmax2 and then adds the offset: the empty asm keeps -ffp-contract
  // from fusing them into one fma (a volatile did the same through memory, a third of the 8-bit NF4 kernel's time)
  float p = v.map[v.qabsmax[g]] * v.absmax2[g / 256];
  asm("" : "+x"(p));
  return p + v.offset;
}

void nf4_decode(const Nf4View& v, int64_t K, int64_t n, int64_t k0, int64_t k1, float* dst) {
  if (has_avx2()) decode_avx2(v, K, n, k0, k1, dst);
  else decode_scalar(v, K, n, k0, k1, dst);
}

void nf4_dot(int64_t M, const float* A, int64_t lda, int64_t K, const Nf4View& W, int64_t n0, int64_t n1,
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
