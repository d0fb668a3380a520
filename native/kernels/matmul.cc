// Matrix products. Three paths, chosen per call:
//  1. f32 operands: OpenBLAS sgemm. Our pool owns the threads (BLAS runs single-threaded in each task): the
//     output is split along N (each task packs all of A) or along M (each task packs all of B), whichever
//     duplicates the smaller packing. A bias is copied into C first and the product added with beta = 1.
//  2. Few rows (M <= 8, decode) against a weight stored [N, K] (a linear layer): our AVX2 dot kernels read the
//     f32/bf16/f16 weight directly, never widened to memory. Rows of W are split across threads; each tile
//     walks its rows of W strictly sequentially (one prefetched stream) against up to 8 rows of x, so that each
//     weight byte is loaded once and the loop runs at memory bandwidth. bf16 -> f32 is a 16-bit shift (even elements of a
//     32-bit pair) or a mask (odd elements); x is packed once per call in the matching even/odd order, so the
//     weight needs no shuffle at all. f16 uses F16C's vcvtph2ps.
//  3. Prompt-sized rows (gemm_nt_takes: up to 4096 rows of bf16/f16, 256 of f32) against a weight stored [N, K]:
//     our 6x16 AVX2 kernel (gemm_nt.cc) widens W strip by strip into L1, prefetching the next strip, and keeps the
//     FMA units busier than OpenBLAS does at a few dozen rows. Columns are shared out over the pool; A is packed
//     once per call.
//     On AVX-512 (has_avx512()) the same kernel with 6x32 zmm tiles and L2 blocking takes every f32/bf16/f16
//     product of more than 8 rows, any transposes (blocked_path; OpenBLAS stays for gemm_nt_max_rows' tests).
//  4. bf16/f16 weights otherwise: the weight is widened panel by panel (a few hundred rows of W at a time)
//     into a per-thread scratch buffer and each panel goes through sgemm. No f32 copy of a whole weight is kept.
#include "kernels/matmul.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/blas.h"
#include "core/cpu.h"
#include "core/pool.h"
#include "core/scratch.h"
#include "kernels/gemm_nt.h"
#include "kernels/layout.h"

namespace vk {
namespace {

// The few-row dot kernels need AVX2, FMA and F16C.
inline bool dot_kernels() { return has_avx2() && cpu_has_f16c(); }

// Products below this many multiply-adds run on the calling thread (a pool dispatch costs a few microseconds).
constexpr double kParallelWork = 64.0 * 64.0 * 64.0;
// Rows of x up to which the dot kernels beat widening + sgemm.
constexpr int64_t kDotMaxRows = 8;

inline int64_t wt_bytes(WT t) { return t == WT::F32 ? 4 : 2; }

inline float widen1(WT t, const void* p, int64_t i) {
  switch (t) {
    case WT::F32: return static_cast<const float*>(p)[i];
    case WT::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case WT::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case WT::Q8_0: case WT::Q4_0: case WT::NF4: break;  // block formats go through kernels/qmatmul.cc
  }
  return 0;
}

// ---- widening n contiguous elements to f32

__attribute__((target("avx2,fma,f16c"))) void widen_avx2(WT t, const void* src, float* dst, int64_t n) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  if (t == WT::BF16) {
    for (; i + 8 <= n; i += 8) {
      __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
      _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(u, 16)));
    }
  } else {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
  }
  for (; i < n; i++) dst[i] = widen1(t, src, i);
}

void widen(WT t, const void* src, float* dst, int64_t n) {
  if (t == WT::F32) {
    std::memcpy(dst, src, (size_t)n * 4);
  } else if (dot_kernels()) {
    widen_avx2(t, src, dst, n);
  } else {
    for (int64_t i = 0; i < n; i++) dst[i] = widen1(t, src, i);
  }
}

// ---- path 1: f32 sgemm split over the pool

void sgemm_split(bool tA, bool tB, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                 int64_t ldb, const float* bias, float* C, int64_t ldc) {
  auto run = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    if (m0 >= m1 || n0 >= n1) return;
    float beta = 0.f;
    if (bias) {
      for (int64_t m = m0; m < m1; m++) std::memcpy(C + m * ldc + n0, bias + n0, (size_t)(n1 - n0) * 4);
      beta = 1.f;
    }
    sgemm(tA, tB, (int)(m1 - m0), (int)(n1 - n0), (int)K, 1.f, tA ? A + m0 : A + m0 * lda, (int)lda,
          tB ? B + n0 * ldb : B + n0, (int)ldb, beta, C + m0 * ldc + n0, (int)ldc);
  };
  if (num_threads() == 1 || (double)M * N * K < kParallelWork) {
    run(0, M, 0, N);
  } else if (N >= M) {
    const int64_t units = (N + 15) / 16;  // 16-column blocks keep every task's B and C aligned
    parallel_for(units, 1, [&](int64_t b, int64_t e) { run(0, M, b * 16, std::min(e * 16, N)); });
  } else {
    const int64_t units = (M + 7) / 8;
    parallel_for(units, 1, [&](int64_t b, int64_t e) { run(b * 8, std::min(e * 8, M), 0, N); });
  }
}

// ---- path 2: dot kernels for a few rows against W stored [N, K]

// Packs the M (<= 8) rows of op(A) for the dot kernels: each block of 16 columns in the order the weight loads
// produce (bf16: the 8 even-indexed then the 8 odd-indexed elements), the K % 16 tail in natural order.
void pack_rows(WT t, bool tA, int64_t M, int64_t K, const float* A, int64_t lda, float* xp) {
  const int64_t K16 = K & ~(int64_t)15;
  for (int64_t m = 0; m < M; m++) {
    float* d = xp + m * K;
    auto at = [&](int64_t k) { return tA ? A[k * lda + m] : A[m * lda + k]; };
    int64_t k = 0;
    if (t == WT::BF16) {
      for (; k < K16; k += 16)
        for (int j = 0; j < 8; j++) {
          d[k + j] = at(k + 2 * j);
          d[k + 8 + j] = at(k + 2 * j + 1);
        }
    }
    for (; k < K; k++) d[k] = at(k);
  }
}

__attribute__((target("avx2,fma"))) inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Lane i holds the sum of v[i]'s eight elements.
__attribute__((target("avx2,fma"))) inline __m256 hsum8(const __m256 v[8]) {
  const __m256 a = _mm256_hadd_ps(v[0], v[1]), b = _mm256_hadd_ps(v[2], v[3]);
  const __m256 c = _mm256_hadd_ps(v[4], v[5]), d = _mm256_hadd_ps(v[6], v[7]);
  const __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
  return _mm256_add_ps(_mm256_permute2f128_ps(ab, cd, 0x20), _mm256_permute2f128_ps(ab, cd, 0x31));
}

// Loads 16 weights from p as two f32 vectors, in the order pack_rows lays x out.
template <WT T>
__attribute__((target("avx2,fma,f16c"))) inline void load16(const void* p, __m256& a, __m256& b) {
  if constexpr (T == WT::F32) {
    a = _mm256_loadu_ps(static_cast<const float*>(p));
    b = _mm256_loadu_ps(static_cast<const float*>(p) + 8);
  } else if constexpr (T == WT::BF16) {
    const __m256i v = _mm256_loadu_si256(static_cast<const __m256i*>(p));
    a = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));                                  // even elements
    b = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xFFFF0000u)));  // odd elements
  } else {
    a = _mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(p)));
    b = _mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(p) + 1));
  }
}

// C[m, n] = x_m · W[n] (+ bias[n]) for m < MR and rows n in [n0, n1). Rows of W are walked one after another,
// strictly sequentially, with a software prefetch ahead of the stream: several rows interleaved ran ~30%
// slower (the hardware prefetcher follows one stream per thread best). Accumulators per row of x: 4 for one or
// two rows (two 16-element steps in flight), 2 for three or four, 1 for more (MR FMA chains are enough).
//
// This runs columns [k0, k1) of K rounded down to 16 (the K % 16 tail goes with the last block, the bias with
// the first, and a block after the first adds to C): dot_rows cuts K into blocks when the packed x of many rows
// would not stay in L1 (at 8 rows and K = 1536 every x load came from L2, at two thirds of the speed).
template <WT T, int MR>
__attribute__((target("avx2,fma,f16c"))) void dot_block(const float* xp, int64_t K, const void* Wv, int64_t ldw,
                                                         int64_t n0, int64_t n1, float* C, int64_t ldc,
                                                         const float* bias, int64_t k0, int64_t k1, bool first,
                                                         bool last) {
  using E = std::conditional_t<T == WT::F32, float, uint16_t>;
  constexpr int NA = MR <= 2 ? 4 : MR <= 4 ? 2 : 1;
  constexpr int64_t kPrefetch = 1024 / sizeof(E);  // elements ahead (1 KB: longer distances measured slower)
  const int64_t K16 = k1;
  // the prefetch runs ahead within this block's columns, then on to the next row's
  const auto ahead = [&](const E* w, int64_t k) {
    const int64_t t = k + kPrefetch;
    _mm_prefetch(reinterpret_cast<const char*>(t < K16 ? w + t : w + ldw + k0 + (t - K16)), _MM_HINT_T0);
  };
  for (int64_t n = n0; n < n1; n++) {
    const E* w = static_cast<const E*>(Wv) + n * ldw;
    __m256 acc[MR][NA];
    for (int m = 0; m < MR; m++)
      for (int a = 0; a < NA; a++) acc[m][a] = _mm256_setzero_ps();
    int64_t k = k0;
    if constexpr (NA == 4) {
      for (; k + 32 <= K16; k += 32) {
        ahead(w, k);
        __m256 wa, wb, wc, wd;
        load16<T>(w + k, wa, wb);
        load16<T>(w + k + 16, wc, wd);
        for (int m = 0; m < MR; m++) {
          const float* xm = xp + m * K + k;
          acc[m][0] = _mm256_fmadd_ps(wa, _mm256_loadu_ps(xm), acc[m][0]);
          acc[m][1] = _mm256_fmadd_ps(wb, _mm256_loadu_ps(xm + 8), acc[m][1]);
          acc[m][2] = _mm256_fmadd_ps(wc, _mm256_loadu_ps(xm + 16), acc[m][2]);
          acc[m][3] = _mm256_fmadd_ps(wd, _mm256_loadu_ps(xm + 24), acc[m][3]);
        }
      }
    }
    for (; k < K16; k += 16) {
      ahead(w, k);
      __m256 wa, wb;
      load16<T>(w + k, wa, wb);
      for (int m = 0; m < MR; m++) {
        const float* xm = xp + m * K + k;
        acc[m][0] = _mm256_fmadd_ps(wa, _mm256_loadu_ps(xm), acc[m][0]);
        acc[m][NA > 1 ? 1 : 0] = _mm256_fmadd_ps(wb, _mm256_loadu_ps(xm + 8), acc[m][NA > 1 ? 1 : 0]);
      }
    }
    // horizontal sums: one shuffle tree for all rows where each row has a single accumulator
    alignas(32) float sums[8];
    if constexpr (NA == 1) {
      __m256 v[8];
      for (int m = 0; m < 8; m++) v[m] = m < MR ? acc[m][0] : _mm256_setzero_ps();
      _mm256_store_ps(sums, hsum8(v));
    } else {
      for (int m = 0; m < MR; m++) {
        __m256 t = acc[m][0];
        for (int a = 1; a < NA; a++) t = _mm256_add_ps(t, acc[m][a]);
        sums[m] = hsum(t);
      }
    }
    for (int m = 0; m < MR; m++) {
      float s = sums[m];
      if (last)
        for (int64_t j = K16; j < K; j++) s += xp[m * K + j] * widen1(T, w, j);
      if (!first) s = C[m * ldc + n] + s;
      else if (bias) s += bias[n];
      C[m * ldc + n] = s;
    }
  }
}

// Packed x of this many bytes or less is read in one block (it stays in L1 beside the weight stream).
constexpr int64_t kDotXBytes = 20 << 10;

template <WT T, int MR>
void dot_rows(const float* xp, int64_t K, const void* Wv, int64_t ldw, int64_t n0, int64_t n1, float* C, int64_t ldc,
              const float* bias) {
  const int64_t K16 = K & ~(int64_t)15;
  const int64_t blocks = std::max<int64_t>(1, (MR * K16 * 4 + kDotXBytes - 1) / kDotXBytes);
  if (blocks == 1) return dot_block<T, MR>(xp, K, Wv, ldw, n0, n1, C, ldc, bias, 0, K16, true, true);
  // blocks depend on MR and K only, so a split of the rows of W never changes a bit
  const int64_t bs = ((K16 + blocks - 1) / blocks + 15) & ~(int64_t)15;
  for (int64_t k0 = 0; k0 < K16; k0 += bs)
    dot_block<T, MR>(xp, K, Wv, ldw, n0, n1, C, ldc, bias, k0, std::min(K16, k0 + bs), k0 == 0, k0 + bs >= K16);
}

using DotFn = void (*)(const float*, int64_t, const void*, int64_t, int64_t, int64_t, float*, int64_t, const float*);

template <WT T>
DotFn dot_for(int64_t M) {
  switch (M) {
    case 1: return dot_rows<T, 1>;
    case 2: return dot_rows<T, 2>;
    case 3: return dot_rows<T, 3>;
    case 4: return dot_rows<T, 4>;
    case 5: return dot_rows<T, 5>;
    case 6: return dot_rows<T, 6>;
    case 7: return dot_rows<T, 7>;
    default: return dot_rows<T, 8>;
  }
}

void dot_path(bool tA, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const void* B, WT bt, int64_t ldb,
              const float* bias, float* C, int64_t ldc) {
  float* xp = scratch(Scratch::DotX, M * K);
  pack_rows(bt, tA, M, K, A, lda, xp);
  DotFn f = bt == WT::BF16 ? dot_for<WT::BF16>(M) : bt == WT::F16 ? dot_for<WT::F16>(M) : dot_for<WT::F32>(M);
  // Contiguous ranges of rows of W per thread (one sequential stream each), at least ~32 KB of weight apiece.
  const int64_t row_bytes = std::max<int64_t>(1, K * wt_bytes(bt));
  const int64_t grain = std::max<int64_t>(1, (32 << 10) / row_bytes);
  parallel_for(N, grain, [&](int64_t b, int64_t e) { f(xp, K, B, ldb, b, e, C, ldc, bias); });
}

// ---- path 3: prompt-sized rows against W stored [N, K]

// Rows up to which linear products take gemm_nt on AVX2: half-precision weights up to 4096 rows (widening strip by
// strip with prefetch beat OpenBLAS's panel-widen-then-sgemm on cold weights: vision tiles of 1024 rows ~10%
// faster, a 1150-token prefill ~17%), f32 weights up to 256 (OpenBLAS needs no widening there; the kernel wins on
// short prompts only). On AVX-512 every product takes the kernel (OpenBLAS is held to its AVX2 kernels here).
// -1: these defaults; a benchmark or test may set a limit of its own (0: OpenBLAS everywhere).
std::atomic<int64_t> g_nt_max_rows{-1};
constexpr int64_t kNtMaxRowsHalf = 4096, kNtMaxRowsF32 = 256;

void nt_path(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const void* B, WT bt, int64_t ldb,
             const float* bias, float* C, int64_t ldc) {
  const float* ap = gemm_nt_pack_local(M, K, A, lda);
  if (num_threads() == 1 || (double)M * N * K < kParallelWork) return gemm_nt_cols(ap, M, K, B, bt, ldb, 0, N, bias, C, ldc);
  const int64_t w = gemm_nt_strip();
  const auto [tasks, per] = gemm_nt_tasks((N + w - 1) / w);
  parallel_tasks(tasks, [&](int64_t t) {
    gemm_nt_cols(ap, M, K, B, bt, ldb, t * per * w, std::min(N, (t + 1) * per * w), bias, C, ldc);
  });
}

// ---- path 3b (AVX-512): every f32/bf16/f16 product, any transposes, on the gemm_nt kernel's 6x32 tiles

void blocked_path(bool tA, bool tB, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const void* B,
                  WT bt, int64_t ldb, const float* bias, float* C, int64_t ldc) {
  float* ap = scratch(Scratch::NtA, gemm_nt_packed_size(M, K));
  gemm_nt_pack_op(tA, M, K, A, lda, ap);
  if (num_threads() == 1 || (double)M * N * K < kParallelWork)
    return gemm_blocked_cols(tB, ap, M, K, B, bt, ldb, 0, N, bias, C, ldc);
  const int64_t w = gemm_nt_strip();
  const auto [tasks, per] = gemm_nt_tasks((N + w - 1) / w);
  parallel_tasks(tasks, [&](int64_t t) {
    gemm_blocked_cols(tB, ap, M, K, B, bt, ldb, t * per * w, std::min(N, (t + 1) * per * w), bias, C, ldc);
  });
}

// ---- path 4: half-precision weights widened panel by panel

void panel_path(bool tA, bool tB, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const void* B, WT bt,
                int64_t ldb, const float* bias, float* C, int64_t ldc) {
  const char* Bb = static_cast<const char*>(B);
  const int64_t eb = wt_bytes(bt);
  // Widens columns [n0, n1) of op(B) into buf; returns its leading dimension.
  auto widen_panel = [&](int64_t n0, int64_t n1, float* buf) -> int64_t {
    const int64_t pw = n1 - n0;
    if (tB) {
      for (int64_t n = n0; n < n1; n++) widen(bt, Bb + (n * ldb) * eb, buf + (n - n0) * K, K);
      return K;
    }
    for (int64_t k = 0; k < K; k++) widen(bt, Bb + (k * ldb + n0) * eb, buf + k * pw, pw);
    return pw;
  };
  const int nt = num_threads();
  // A small weight against many rows: widen it whole for this call and let sgemm_split share out the rows.
  if (N < 16 * nt && M > N) {
    std::vector<float> w((size_t)(N * K));
    const int64_t ld = widen_panel(0, N, w.data());
    sgemm_split(tA, tB, M, N, K, A, lda, w.data(), ld, bias, C, ldc);
    return;
  }
  // Panels of at most ~2 MB of f32, a multiple of the thread count of them, 16-column aligned.
  const int64_t maxP = std::max<int64_t>(16, std::min<int64_t>(1024, ((512 << 10) / std::max<int64_t>(K, 1)) & ~15));
  const int64_t per_thread = (N + nt - 1) / nt;
  const int64_t rounds = (per_thread + maxP - 1) / maxP;
  const int64_t P = ((N + nt * rounds - 1) / (nt * rounds) + 15) & ~(int64_t)15;
  const int64_t npanels = (N + P - 1) / P;
  parallel_tasks(npanels, [&](int64_t p) {
    const int64_t n0 = p * P, n1 = std::min(N, n0 + P), pw = n1 - n0;
    float* buf = scratch(Scratch::Panel, pw * K);
    const int64_t ld = widen_panel(n0, n1, buf);
    float beta = 0.f;
    if (bias) {
      for (int64_t m = 0; m < M; m++) std::memcpy(C + m * ldc + n0, bias + n0, (size_t)pw * 4);
      beta = 1.f;
    }
    sgemm(tA, tB, (int)M, (int)pw, (int)K, 1.f, A, (int)lda, buf, (int)ld, beta, C + n0, (int)ldc);
  });
}

}  // namespace

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const void* B, WT bt,
          int64_t ldb, const float* bias, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int64_t m = 0; m < M; m++)
      for (int64_t n = 0; n < N; n++) C[m * ldc + n] = bias ? bias[n] : 0.f;
    return;
  }
  if (transB && M <= kDotMaxRows && dot_kernels()) return dot_path(transA, M, N, K, A, lda, B, bt, ldb, bias, C, ldc);
  if (has_avx512() && !wt_is_block(bt) && gemm_nt_takes(M, bt))
    return blocked_path(transA, transB, M, N, K, A, lda, B, bt, ldb, bias, C, ldc);
  if (!transA && transB && gemm_nt_takes(M, bt))
    return nt_path(M, N, K, A, lda, B, bt, ldb, bias, C, ldc);
  if (bt == WT::F32)
    return sgemm_split(transA, transB, M, N, K, A, lda, static_cast<const float*>(B), ldb, bias, C, ldc);
  panel_path(transA, transB, M, N, K, A, lda, B, bt, ldb, bias, C, ldc);
}

bool gemm_dot_available(int64_t M) { return M >= 1 && M <= kDotMaxRows && dot_kernels(); }

const float* gemm_dot_pack_local(WT wt, int64_t M, int64_t K, const float* A, int64_t lda) {
  float* xp = scratch(Scratch::SharedDotX, M * K);
  pack_rows(wt, false, M, K, A, lda, xp);
  return xp;
}

void gemm_dot_cols(const float* xp, int64_t M, int64_t K, const void* W, WT wt, int64_t ldw, int64_t n0, int64_t n1,
                   const float* bias, float* C, int64_t ldc) {
  if (n0 >= n1) return;
  DotFn f = wt == WT::BF16 ? dot_for<WT::BF16>(M) : wt == WT::F16 ? dot_for<WT::F16>(M) : dot_for<WT::F32>(M);
  f(xp, K, W, ldw, n0, n1, C, ldc, bias);
}

int64_t gemm_nt_max_rows() { return g_nt_max_rows.load(); }
bool gemm_nt_takes(int64_t M, WT wt) {
  if (!gemm_nt_available(wt)) return false;
  const int64_t set = g_nt_max_rows.load(std::memory_order_relaxed);
  if (has_avx512()) return set < 0 || M <= set;
  const int64_t lim = set < 0 ? kNtMaxRowsHalf : set;
  return M <= (wt == WT::F32 ? std::min(lim, kNtMaxRowsF32) : lim);
}
void set_gemm_nt_max_rows(int64_t rows) { g_nt_max_rows.store(rows); }

void gemm_batched(int64_t nbatch, bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A,
                  const int64_t* offA, int64_t lda, const void* B, WT bt, const int64_t* offB, int64_t ldb,
                  float* C) {
  const int64_t eb = wt_bytes(bt);
  auto one = [&](int64_t q) {
    gemm(transA, transB, M, N, K, A + (offA ? offA[q] : 0), lda,
         static_cast<const char*>(B) + (offB ? offB[q] : 0) * eb, bt, ldb, nullptr, C + q * M * N, N);
  };
  const int nt = num_threads();
  const double work = (double)M * N * K;
  // Whole products per task when there are enough of them (or they are too small to split); otherwise one
  // product after another, each split across the pool. (gemm inside a pool task runs single-threaded.)
  const bool per_batch = nbatch > 1 && nbatch >= nt && (nbatch % nt == 0 || nbatch >= 4 * nt || work < kParallelWork);
  if (per_batch)
    parallel_tasks(nbatch, one);
  else
    for (int64_t q = 0; q < nbatch; q++) one(q);
}

void raw_sgemm_times(int64_t M, int64_t N, int64_t K, bool transB, int threads, int iters, double* seconds) {
  num_threads();  // our pool exists (creating it sets BLAS to one thread; we set it back below anyway)
  std::vector<float> A((size_t)(M * K)), B((size_t)(K * N)), C((size_t)(M * N));
  uint32_t s = 12345;
  auto rnd = [&] {
    s = s * 1664525u + 1013904223u;
    return (float)((s >> 8) & 0xffff) / 65536.f - 0.5f;
  };
  for (auto& v : A) v = rnd();
  for (auto& v : B) v = rnd();
  blas_set_threads(threads);
  auto call = [&] {
    sgemm(false, transB, (int)M, (int)N, (int)K, 1.f, A.data(), (int)K, B.data(), transB ? (int)K : (int)N, 0.f,
          C.data(), (int)N);
  };
  call();
  for (int i = 0; i < iters; i++) {
    auto t0 = std::chrono::steady_clock::now();
    call();
    seconds[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  blas_set_threads(1);
}

}  // namespace vk
