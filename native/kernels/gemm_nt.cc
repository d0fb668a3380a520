// See gemm_nt.h. Layouts:
//  - packed A: K is cut into blocks of at most kMaxKc columns (sizes depend only on K); block b holds the row
//    panels of 6 rows one after another, each panel kc x 6 (k-major: the 6 rows' values of one k together), the
//    rows past M zero.
//  - a B strip: 16 rows of W (16 output columns) widened to f32 and transposed to kc x 16, so that one k reads
//    two aligned vectors. A Q8_0 weight is decoded into the strip the same way (d * q is exact in f32), so its
//    product is the product with the dequantized weight, summed in the same order, without a copy of W.
// The micro-kernel keeps a 6 x 16 tile of C in 12 ymm registers: per k two loads of B, six broadcasts of A and
// twelve FMAs, so the two FMA pipes, not the loads, set the pace.
#include "kernels/gemm_nt.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/cpu.h"
#include "core/pool.h"
#include "core/scratch.h"
#include "kernels/layout.h"

namespace vk {
namespace {

constexpr int64_t kMr = 6, kNr = 16;
// The AVX-512 kernel's strips are 32 columns wide (a 6 x 32 tile in 12 zmm registers).
constexpr int64_t kNr512 = 32;
// A k-block's B strip (kc x 16 f32 = 16 KB at 256, 32 KB for a 32-wide strip) stays in L1 beside the A panel
// streaming past it.
constexpr int64_t kMaxKc = 256;
// The AVX-512 loops block for L2 as well: up to kNcStrips strips of B are widened together (kc x 256 f32 = 256 KB)
// and swept by blocks of kMcPanels row panels of A (96 rows, kc x 96 f32 = 96 KB), so that a tall A is read from
// L2, not from memory, once per strip.
constexpr int64_t kNcStrips = 8, kMcPanels = 16;

#define VK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

inline int64_t kc_of(int64_t K) {
  const int64_t blocks = (K + kMaxKc - 1) / kMaxKc;
  return (K + blocks - 1) / blocks;
}
inline int64_t panels_of(int64_t M) { return (M + kMr - 1) / kMr; }

// Element i of a Q8_0 row: block i / 32 holds the fp16 scale then 32 int8 values.
inline float q8_0_at(const void* row, int64_t i) {
  const uint8_t* b = static_cast<const uint8_t*>(row) + (i >> 5) * wt_block_bytes(WT::Q8_0);
  uint16_t h;
  std::memcpy(&h, b, 2);
  return f16_to_f32(h) * (float)(int8_t)b[2 + (i & 31)];
}

// Eight elements from index i of a row that starts at p (i is a multiple of 8 except in rare k-block splits).
template <WT T>
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const void* p, int64_t i) {
  if constexpr (T == WT::Q8_0) {
    if ((i & 31) > 24) {  // the eight straddle two blocks (a k-block size that is not a multiple of 8)
      alignas(32) float v[8];
      for (int j = 0; j < 8; j++) v[j] = q8_0_at(p, i + j);
      return _mm256_load_ps(v);
    }
    const uint8_t* b = static_cast<const uint8_t*>(p) + (i >> 5) * wt_block_bytes(WT::Q8_0);
    uint16_t h;
    std::memcpy(&h, b, 2);
    const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + (i & 31)))));
    return _mm256_mul_ps(q, _mm256_set1_ps(_mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)))));
  } else if constexpr (T == WT::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(p) + i);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i));
    if constexpr (T == WT::BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    else return _mm256_cvtph_ps(h);
  }
}

template <WT T>
inline float load1(const void* p, int64_t i) {
  if constexpr (T == WT::Q8_0) return q8_0_at(p, i);
  else if constexpr (T == WT::F32) return static_cast<const float*>(p)[i];
  else if constexpr (T == WT::BF16) return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
  else return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
}

// Transposes r[0..7] (8 rows of 8) in place into 8 columns.
__attribute__((target("avx2,fma"))) inline void transpose8(__m256 r[8]) {
  __m256 t[8], s[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; h++) {
    s[4 * h + 0] = _mm256_shuffle_ps(t[4 * h + 0], t[4 * h + 2], 0x44);
    s[4 * h + 1] = _mm256_shuffle_ps(t[4 * h + 0], t[4 * h + 2], 0xEE);
    s[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    s[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
  }
}

// Row n of W (row stride ldw elements; a block format's rows are ldw values packed).
template <WT T>
inline const char* row_at(const void* W, int64_t ldw, int64_t n) {
  return static_cast<const char*>(W) + n * wt_row_bytes(T, ldw);
}

// The bytes of a row that hold elements [k0, k0 + kc): {offset, length}.
template <WT T>
inline std::pair<int64_t, int64_t> span_of(int64_t k0, int64_t kc) {
  if constexpr (wt_is_block(T)) {
    const int64_t bv = wt_block_values(T), bb = wt_block_bytes(T);
    const int64_t b0 = k0 / bv, b1 = (k0 + kc + bv - 1) / bv;
    return {b0 * bb, (b1 - b0) * bb};
  } else {
    return {k0 * wt_block_bytes(T), kc * wt_block_bytes(T)};
  }
}

// dst[k * NR + j] = W[n + j, k0 + k] for j < nr, k < kc; 0 for j >= nr.
template <WT T, int64_t NR>
__attribute__((target("avx2,fma,f16c"))) void pack_strip(const void* W, int64_t ldw, int64_t n, int64_t nr, int64_t k0,
                                                         int64_t kc, float* dst) {
  const void* rows[NR];
  for (int64_t j = 0; j < NR; j++) rows[j] = j < nr ? row_at<T>(W, ldw, n + j) : nullptr;
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    for (int h = 0; h < NR / 8; h++) {
      __m256 r[8];
      for (int j = 0; j < 8; j++) r[j] = rows[8 * h + j] ? load8<T>(rows[8 * h + j], k0 + k) : _mm256_setzero_ps();
      transpose8(r);
      for (int i = 0; i < 8; i++) _mm256_store_ps(dst + (k + i) * NR + 8 * h, r[i]);
    }
  }
  for (; k < kc; k++)
    for (int64_t j = 0; j < NR; j++) dst[k * NR + j] = rows[j] ? load1<T>(rows[j], k0 + k) : 0.f;
}

// The same strip from B stored [K, N] (a plain right operand, not a linear layer's weight): dst[k * NR + j] =
// B[k0 + k, n + j]; each k is a contiguous run of B, so no transpose. f32, bf16 and f16 only.
template <WT T, int64_t NR>
__attribute__((target("avx2,fma,f16c"))) void pack_strip_kn(const void* B, int64_t ldb, int64_t n, int64_t nr,
                                                            int64_t k0, int64_t kc, float* dst) {
  const int64_t eb = wt_block_bytes(T);
  for (int64_t k = 0; k < kc; k++) {
    const char* row = static_cast<const char*>(B) + ((k0 + k) * ldb + n) * eb;
    float* d = dst + k * NR;
    int64_t j = 0;
    for (; j + 8 <= nr; j += 8) _mm256_store_ps(d + j, load8<T>(row, j));
    for (; j < nr; j++) d[j] = load1<T>(row, j);
    for (; j < NR; j++) d[j] = 0.f;
  }
}

// C tile [mr, nr] (+)= a (kc x 6) · b (kc x 16). first: C = tile (+ bias); else C += tile. The six rows are written
// out with twelve named accumulators on purpose: as an array in a loop GCC kept some of them in memory.
__attribute__((target("avx2,fma"))) void micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                               int64_t mr, int64_t nr, const float* bias, bool first) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 av = _mm256_broadcast_ss(a);
    c00 = _mm256_fmadd_ps(av, b0, c00);
    c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(av, b0, c10);
    c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(av, b0, c20);
    c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(av, b0, c30);
    c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(av, b0, c40);
    c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(av, b0, c50);
    c51 = _mm256_fmadd_ps(av, b1, c51);
    a += kMr;
    b += kNr;
  }
  const __m256 acc[kMr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  if (nr == kNr) {
    for (int64_t r = 0; r < mr; r++) {
      float* p = c + r * ldc;
      for (int h = 0; h < 2; h++) {
        __m256 v = acc[r][h];
        if (!first) v = _mm256_add_ps(_mm256_loadu_ps(p + 8 * h), v);
        else if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + 8 * h));
        _mm256_storeu_ps(p + 8 * h, v);
      }
    }
    return;
  }
  alignas(32) float t[kMr][kNr];
  for (int64_t r = 0; r < kMr; r++) {
    _mm256_store_ps(t[r], acc[r][0]);
    _mm256_store_ps(t[r] + 8, acc[r][1]);
  }
  // the same single roundings as the vector path above
  for (int64_t r = 0; r < mr; r++)
    for (int64_t j = 0; j < nr; j++) {
      float& o = c[r * ldc + j];
      o = !first ? o + t[r][j] : bias ? t[r][j] + bias[j] : t[r][j];
    }
}

// The AVX-512 tile: C [mr, nr] (+)= a (kc x 6) · b (kc x 32), twelve zmm accumulators, per k two loads of B, six
// broadcasts of A and twelve FMAs. Each element is summed in the same order as micro's (one FMA per k, in k order),
// so both kernels give the same bits. Partial tiles store through masks, with the same single roundings.
VK_AVX512 void micro512(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int64_t mr, int64_t nr,
                        const float* bias, bool first) {
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; k++) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
    __m512 av = _mm512_set1_ps(a[0]);
    c00 = _mm512_fmadd_ps(av, b0, c00);
    c01 = _mm512_fmadd_ps(av, b1, c01);
    av = _mm512_set1_ps(a[1]);
    c10 = _mm512_fmadd_ps(av, b0, c10);
    c11 = _mm512_fmadd_ps(av, b1, c11);
    av = _mm512_set1_ps(a[2]);
    c20 = _mm512_fmadd_ps(av, b0, c20);
    c21 = _mm512_fmadd_ps(av, b1, c21);
    av = _mm512_set1_ps(a[3]);
    c30 = _mm512_fmadd_ps(av, b0, c30);
    c31 = _mm512_fmadd_ps(av, b1, c31);
    av = _mm512_set1_ps(a[4]);
    c40 = _mm512_fmadd_ps(av, b0, c40);
    c41 = _mm512_fmadd_ps(av, b1, c41);
    av = _mm512_set1_ps(a[5]);
    c50 = _mm512_fmadd_ps(av, b0, c50);
    c51 = _mm512_fmadd_ps(av, b1, c51);
    a += kMr;
    b += kNr512;
  }
  const __m512 acc[kMr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  const __mmask16 mask[2] = {
      (__mmask16)(nr >= 16 ? 0xFFFFu : (1u << nr) - 1u),
      (__mmask16)(nr >= 32 ? 0xFFFFu : nr > 16 ? (1u << (nr - 16)) - 1u : 0u)};
  for (int64_t r = 0; r < mr; r++) {
    float* p = c + r * ldc;
    for (int h = 0; h < 2; h++) {
      if (!mask[h]) continue;
      __m512 v = acc[r][h];
      if (!first) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask[h], p + 16 * h), v);
      else if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask[h], bias + 16 * h));
      _mm512_mask_storeu_ps(p + 16 * h, mask[h], v);
    }
  }
}

// Asks for the cache lines of W[n..n+nr, k0..k0+kc) ahead of use: the weight comes from memory (a model's weights
// do not fit in cache), and 16 rows read a few lines each are more streams than the hardware prefetchers follow.
template <WT T>
inline void prefetch_strip(const void* W, int64_t ldw, int64_t n, int64_t nr, int64_t k0, int64_t kc) {
  const auto [off, len] = span_of<T>(k0, kc);
  for (int64_t j = 0; j < nr; j++) {
    const char* row = row_at<T>(W, ldw, n + j) + off;
    for (int64_t b = 0; b < len; b += 64) _mm_prefetch(row + b, _MM_HINT_T1);
    _mm_prefetch(row + len - 1, _MM_HINT_T1);
  }
}

// The cache lines of B[k0..k0+kc, n..n+nr) for B stored [K, N].
template <WT T>
inline void prefetch_strip_kn(const void* B, int64_t ldb, int64_t n, int64_t nr, int64_t k0, int64_t kc) {
  const int64_t eb = wt_block_bytes(T);
  for (int64_t k = 0; k < kc; k++) {
    const char* row = static_cast<const char*>(B) + ((k0 + k) * ldb + n) * eb;
    for (int64_t b = 0; b < nr * eb; b += 64) _mm_prefetch(row + b, _MM_HINT_T1);
    _mm_prefetch(row + nr * eb - 1, _MM_HINT_T1);
  }
}

// The AVX-512 loops (see kNcStrips): per k-block, up to kNcStrips 32-column strips of B widened into one panel,
// then row blocks of A swept over it strip by strip. While the first row block runs, the next panel's weights are
// prefetched strip by strip. KN: B stored [K, N] instead of a weight [N, K].
template <WT T, bool KN>
void cols512(const float* A, int64_t M, int64_t K, const void* W, int64_t ldw, int64_t n0, int64_t n1,
             const float* bias, float* C, int64_t ldc) {
  const int64_t kcMax = kc_of(K), P = panels_of(M), NC = kNcStrips * kNr512;
  float* panel = scratch(Scratch::NtStrip, kcMax * NC);
  auto prefetch = [&](int64_t n, int64_t k0, int64_t kc) {
    const int64_t nr = std::min(kNr512, n1 - n);
    if (KN) prefetch_strip_kn<T>(W, ldw, n, nr, k0, kc);
    else prefetch_strip<T>(W, ldw, n, nr, k0, kc);
  };
  for (int64_t s = n0; s < std::min(n1, n0 + NC); s += kNr512) prefetch(s, 0, kcMax);
  for (int64_t k0 = 0; k0 < K; k0 += kcMax) {
    const int64_t kc = std::min(kcMax, K - k0);
    const float* Ab = A + k0 * P * kMr;
    for (int64_t nb = n0; nb < n1; nb += NC) {
      const int64_t nbEnd = std::min(n1, nb + NC);
      for (int64_t n = nb, i = 0; n < nbEnd; n += kNr512, i++) {
        const int64_t nr = std::min(kNr512, nbEnd - n);
        if (KN) pack_strip_kn<T, kNr512>(W, ldw, n, nr, k0, kc, panel + i * kc * kNr512);
        else pack_strip<T, kNr512>(W, ldw, n, nr, k0, kc, panel + i * kc * kNr512);
      }
      // the panel after this one: the next columns of this k-block, or the first of the next k-block
      int64_t nextN = nbEnd, nextK = k0, nextKc = kc;
      if (nextN >= n1) nextN = n0, nextK = k0 + kc, nextKc = std::min(kcMax, K - k0 - kc);
      const bool ahead = nextK < K;
      for (int64_t p0 = 0; p0 < P; p0 += kMcPanels) {
        const int64_t p1 = std::min(P, p0 + kMcPanels);
        for (int64_t n = nb, i = 0; n < nbEnd; n += kNr512, i++) {
          const int64_t nr = std::min(kNr512, nbEnd - n);
          const float* strip = panel + i * kc * kNr512;
          for (int64_t p = p0; p < p1; p++)
            micro512(kc, Ab + p * kc * kMr, strip, C + p * kMr * ldc + n, ldc, std::min(kMr, M - p * kMr), nr,
                     bias ? bias + n : nullptr, k0 == 0);
          const int64_t pn = nextN + i * kNr512;
          if (p0 == 0 && ahead && pn < std::min(n1, nextN + NC)) prefetch(pn, nextK, nextKc);
        }
      }
    }
  }
}

template <WT T>
void cols(const float* A, int64_t M, int64_t K, const void* W, int64_t ldw, int64_t n0, int64_t n1, const float* bias,
          float* C, int64_t ldc) {
  if (has_avx512()) return cols512<T, false>(A, M, K, W, ldw, n0, n1, bias, C, ldc);
  const int64_t kcMax = kc_of(K), P = panels_of(M);
  float* strip = scratch(Scratch::NtStrip, kcMax * kNr);
  prefetch_strip<T>(W, ldw, n0, std::min(kNr, n1 - n0), 0, kcMax);
  for (int64_t k0 = 0; k0 < K; k0 += kcMax) {
    const int64_t kc = std::min(kcMax, K - k0);
    const float* Ab = A + k0 * P * kMr;
    for (int64_t n = n0; n < n1; n += kNr) {
      const int64_t nr = std::min(kNr, n1 - n);
      pack_strip<T, kNr>(W, ldw, n, nr, k0, kc, strip);
      // the next strip of this k-block, or the first of the next k-block
      if (n + kNr < n1) prefetch_strip<T>(W, ldw, n + kNr, std::min(kNr, n1 - n - kNr), k0, kc);
      else if (k0 + kc < K) prefetch_strip<T>(W, ldw, n0, std::min(kNr, n1 - n0), k0 + kc, std::min(kcMax, K - k0 - kc));
      for (int64_t p = 0; p < P; p++)
        micro(kc, Ab + p * kc * kMr, strip, C + p * kMr * ldc + n, ldc, std::min(kMr, M - p * kMr), nr,
              bias ? bias + n : nullptr, k0 == 0);
    }
  }
}

}  // namespace

bool gemm_nt_available(WT) { return has_avx2() && cpu_has_f16c(); }

int64_t gemm_nt_strip() { return has_avx512() ? kNr512 : kNr; }

std::pair<int64_t, int64_t> gemm_nt_tasks(int64_t strips) {
  const int64_t nt = num_threads();
  const int64_t per = std::max<int64_t>(1, (strips + 4 * nt - 1) / (4 * nt));
  return {(strips + per - 1) / per, per};
}

int64_t gemm_nt_packed_size(int64_t M, int64_t K) { return panels_of(M) * kMr * K; }

void gemm_nt_pack(int64_t M, int64_t K, const float* A, int64_t lda, float* dst) {
  gemm_nt_pack_op(false, M, K, A, lda, dst);
}

void gemm_nt_pack_op(bool transA, int64_t M, int64_t K, const float* A, int64_t lda, float* dst) {
  const int64_t kcMax = kc_of(K), P = panels_of(M);
  if (transA) {  // A stored [K, M]: each k's six values are contiguous
    for (int64_t k0 = 0; k0 < K; k0 += kcMax) {
      const int64_t kc = std::min(kcMax, K - k0);
      float* block = dst + k0 * P * kMr;
      for (int64_t p = 0; p < P; p++) {
        float* panel = block + p * kc * kMr;
        const int64_t m0 = p * kMr, mr = std::min(kMr, M - m0);
        for (int64_t k = 0; k < kc; k++) {
          const float* src = A + (k0 + k) * lda + m0;
          for (int64_t r = 0; r < kMr; r++) panel[k * kMr + r] = r < mr ? src[r] : 0.f;
        }
      }
    }
    return;
  }
  for (int64_t k0 = 0; k0 < K; k0 += kcMax) {
    const int64_t kc = std::min(kcMax, K - k0);
    float* block = dst + k0 * P * kMr;
    for (int64_t p = 0; p < P; p++) {
      float* panel = block + p * kc * kMr;
      for (int64_t r = 0; r < kMr; r++) {
        const int64_t m = p * kMr + r;
        if (m < M) {
          const float* src = A + m * lda + k0;
          for (int64_t k = 0; k < kc; k++) panel[k * kMr + r] = src[k];
        } else {
          for (int64_t k = 0; k < kc; k++) panel[k * kMr + r] = 0.f;
        }
      }
    }
  }
}

const float* gemm_nt_pack_local(int64_t M, int64_t K, const float* A, int64_t lda) {
  float* dst = scratch(Scratch::NtA, gemm_nt_packed_size(M, K));
  gemm_nt_pack(M, K, A, lda, dst);
  return dst;
}

void gemm_nt_cols(const float* packedA, int64_t M, int64_t K, const void* W, WT wt, int64_t ldw, int64_t n0,
                  int64_t n1, const float* bias, float* C, int64_t ldc) {
  if (M <= 0 || n1 <= n0 || K <= 0) return;
  switch (wt) {
    case WT::F32: return cols<WT::F32>(packedA, M, K, W, ldw, n0, n1, bias, C, ldc);
    case WT::BF16: return cols<WT::BF16>(packedA, M, K, W, ldw, n0, n1, bias, C, ldc);
    case WT::F16: return cols<WT::F16>(packedA, M, K, W, ldw, n0, n1, bias, C, ldc);
    case WT::Q8_0: return cols<WT::Q8_0>(packedA, M, K, W, ldw, n0, n1, bias, C, ldc);
    case WT::Q4_0: case WT::NF4: break;  // no kernel yet (issue 13); qlinear refuses them before this
  }
}

}  // namespace vk

namespace vk {

void gemm_blocked_cols(bool transB, const float* packedA, int64_t M, int64_t K, const void* B, WT bt, int64_t ldb,
                       int64_t n0, int64_t n1, const float* bias, float* C, int64_t ldc) {
  if (M <= 0 || n1 <= n0 || K <= 0) return;
  if (transB) return gemm_nt_cols(packedA, M, K, B, bt, ldb, n0, n1, bias, C, ldc);
  switch (bt) {
    case WT::F32: return cols512<WT::F32, true>(packedA, M, K, B, ldb, n0, n1, bias, C, ldc);
    case WT::BF16: return cols512<WT::BF16, true>(packedA, M, K, B, ldb, n0, n1, bias, C, ldc);
    case WT::F16: return cols512<WT::F16, true>(packedA, M, K, B, ldb, n0, n1, bias, C, ldc);
    case WT::Q8_0: case WT::Q4_0: case WT::NF4: break;  // block formats are weights stored [N, K] only
  }
}

}  // namespace vk
