// See qdot.h. The arithmetic, the same on every path (test/engine/qdot.test.ts re-derives it, bit for bit):
//  - activations: per row of A and per 32-value block, amax = max |x|, d = amax / 127 and q = nearbyint(x · (1 / d))
//    (ties to even) as int8. A block whose d is not a normal float (amax below 127 · FLT_MIN, zeros included) gets
//    d = 0 and q = 0; a block holding a NaN or an infinity gets d = NaN and q = 0, so its outputs are NaN.
//  - weights, per unit u of 32 values: an f32 scale w_u and int8 values wq: Q8_0 its fp16 d and q; Q4_0 its fp16 d
//    and nibble − 8; NF4 (two units per block of 64) absmax / 127 and kNf4I8[code] = round(127 · code).
//  - per output: s_u = Σ_j wq_uj · q_uj, exact in int32; t_u = (w_u · d_u) · s_u, two f32 products; lane[u mod 8]
//    += t_u in unit order (a last group short of 8 units adds +0 to the lanes it lacks); the result is
//    ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)), then + bias. No product is fused into an add (the SIMD
//    paths pass t through an empty asm, the scalar one through a volatile), whatever -ffp-contract says.
// The SIMD paths compute the 8 block sums of a group as 8 vectors of partial sums and reduce them together with
// horizontal adds, so the lanes of the f32 accumulator are blocks, as in the order above. AVX2: maddubs/madd with
// the sign trick (|w| unsigned against x with w's sign), Q4_0's nibbles unsigned against x less 8 · Σq (its pair
// sums are small enough to be added in 16 bits, so its 8 units are reduced with hadd_epi16 and no madd), NF4 |q|
// unsigned against its code with q's sign (the codes are within ±127). AVX-512
// VNNI (at the avx512 level, 256-bit vpdpbusd): w + 128 unsigned against x, less 128 · Σq. NF4 looks its codes up
// with pshufb; its activations are stored with each block's even elements first, then its odd ones, which is the
// order of the high and then the low nibbles of its 16 bytes.
#include "kernels/qdot.h"

#include <immintrin.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/cpu.h"
#include "core/pool.h"
#include "core/scratch.h"
#include "kernels/elementwise.h"
#include "kernels/layout.h"
#include "kernels/q4.h"

namespace vk {
namespace {

enum class Fmt { Q8, Q4, NF4 };

constexpr int64_t kUnit = 32;

// round(127 · code) of bitsandbytes' 16 NF4 codes (kernels/nf4.cc): the code read back is within 0.47 / 127 of
// the true one, a tenth of NF4's own rounding (half the gap between neighbouring codes, at least 0.04).
constexpr int8_t kNf4I8[16] = {-127, -88, -67, -50, -36, -23, -12, 0, 10, 20, 31, 43, 56, 71, 92, 127};

// The activations of one call, quantized once on the calling thread and read by every thread.
struct Acts {
  int8_t* q;     // [M][K], NF4: each block's even elements, then its odd ones
  uint8_t* aq;   // [M][K]: |q| in q's layout (NF4 only: the AVX2 kernel multiplies |q| by the code with q's sign)
  float* d;      // [M][nbp], zero past the last block
  int32_t* sum;  // [M][nbp], Σ q of each block
  int64_t K, nbp;
};

inline int64_t padded_units(int64_t K) { return (K / kUnit + 7) / 8 * 8; }

void quantize_acts(int64_t M, int64_t K, const float* A, int64_t lda, bool nf4_order, Acts& a) {
  const int64_t nu = K / kUnit;
  for (int64_t m = 0; m < M; m++) {
    for (int64_t b = 0; b < a.nbp; b++) {
      float& d = a.d[m * a.nbp + b];
      int32_t& sum = a.sum[m * a.nbp + b];
      d = 0.f;
      sum = 0;
      if (b >= nu) continue;
      const float* x = A + m * lda + b * kUnit;
      int8_t* q = a.q + m * K + b * kUnit;
      std::memset(q, 0, kUnit);
      if (nf4_order) std::memset(a.aq + m * K + b * kUnit, 0, kUnit);
      float amax = 0.f;
      bool finite = true;
      for (int j = 0; j < kUnit; j++) {
        finite = finite && std::isfinite(x[j]);
        amax = std::max(amax, std::fabs(x[j]));
      }
      if (!finite) {
        d = std::numeric_limits<float>::quiet_NaN();
        continue;
      }
      const float dd = amax / 127.f;
      if (!(dd >= FLT_MIN)) continue;
      const float id = 1.f / dd;
      d = dd;
      for (int j = 0; j < kUnit; j++) {
        const float r = std::nearbyint(x[j] * id);
        const int v = (int)std::min(127.f, std::max(-127.f, r));
        const int at = nf4_order ? (j & 1 ? 16 + j / 2 : j / 2) : j;
        q[at] = (int8_t)v;
        if (nf4_order) a.aq[m * K + b * kUnit + at] = (uint8_t)std::abs(v);
        sum += v;
      }
    }
  }
}

inline const uint8_t* unit_bytes(Fmt F, const void* W, int64_t K, int64_t n, int64_t u) {
  if (F == Fmt::NF4) return static_cast<const Nf4View*>(W)->codes + n * (K / 2) + u * 16;
  const int64_t B = F == Fmt::Q8 ? 34 : 18;
  return static_cast<const uint8_t*>(W) + n * (K / kUnit) * B + u * B;
}

inline float nf4_unit_scale(const void* W, int64_t K, int64_t n, int64_t u) {
  return nf4_absmax(*static_cast<const Nf4View*>(W), n * (K / 64) + u / 2) / 127.f;
}

// ---- scalar

template <Fmt F>
float unit_scale(const void* W, int64_t K, int64_t n, int64_t u) {
  if (F == Fmt::NF4) return nf4_unit_scale(W, K, n, u);
  uint16_t h;
  std::memcpy(&h, unit_bytes(F, W, K, n, u), 2);
  return f16_to_f32(h);
}

template <Fmt F>
int32_t unit_sum(const uint8_t* p, const int8_t* x) {
  int32_t s = 0;
  if (F == Fmt::Q8) {
    for (int j = 0; j < 32; j++) s += (int8_t)p[2 + j] * x[j];
  } else if (F == Fmt::Q4) {
    for (int i = 0; i < 16; i++) s += ((p[2 + i] & 15) - 8) * x[i] + ((p[2 + i] >> 4) - 8) * x[16 + i];
  } else {
    for (int i = 0; i < 16; i++) s += kNf4I8[p[i] >> 4] * x[i] + kNf4I8[p[i] & 15] * x[16 + i];
  }
  return s;
}

inline float sum_lanes(const float l[8]) { return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7])); }

template <Fmt F, int MR>
void rows_scalar(const Acts& a, const void* W, int64_t K, int64_t n0, int64_t n1, const float* bias, float* C,
                 int64_t ldc) {
  const int64_t nu = K / kUnit;
  for (int64_t n = n0; n < n1; n++) {
    float lane[MR][8] = {};
    for (int64_t u = 0; u < a.nbp; u++) {
      const float w = u < nu ? unit_scale<F>(W, K, n, u) : 0.f;
      for (int m = 0; m < MR; m++) {
        const int32_t s = u < nu ? unit_sum<F>(unit_bytes(F, W, K, n, u), a.q + m * K + u * kUnit) : 0;
        const float f = w * a.d[m * a.nbp + u];
        const volatile float t = f * (float)s;
        lane[m][u % 8] = lane[m][u % 8] + t;
      }
    }
    for (int m = 0; m < MR; m++) {
      const float r = sum_lanes(lane[m]);
      C[m * ldc + n] = bias ? r + bias[n] : r;
    }
  }
}

}  // namespace

// ---- SIMD: the same loop under two targets (kernels/qdot_simd.inc), with each target's unit dot products

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace qdot_avx2 {
using vk::Fmt;
// partial sums of wq · q over one unit: 8 int32 lanes adding up to the unit's s once fix() is applied (Q8_0 and
// NF4; Q4_0 takes partial16 below)
template <Fmt F>
inline __m256i partial(const uint8_t* p, const int8_t* x, const uint8_t* ax, __m256i tbl) {
  const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0x0f);
  const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  static_assert(F != Fmt::Q4, "Q4_0 takes partial16");
  if (F == Fmt::Q8) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xv, w)), ones);
  }
  // the 16 bytes in both halves (a load, no shuffle), the low half shifted down a nibble: high nibbles first
  const __m256i raw = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i idx = _mm256_and_si256(_mm256_srlv_epi64(raw, _mm256_setr_epi64x(4, 4, 0, 0)), m4);
  const __m256i c = _mm256_shuffle_epi8(tbl, idx);
  // |x| unsigned against the code with x's sign (codes are within ±127, so the sign never overflows)
  const __m256i axv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ax));
  return _mm256_madd_epi16(_mm256_maddubs_epi16(axv, _mm256_sign_epi8(c, xv)), ones);
}
template <Fmt F>
inline __m256i fix(__m256i s, __m256i xsum) {
  return F == Fmt::Q4 ? _mm256_sub_epi32(s, _mm256_slli_epi32(xsum, 3)) : s;
}
inline __m256i table() {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(vk::kNf4I8));
  return _mm256_set_m128i(t, t);
}
// Q4_0's products of a nibble (0..15) and an int8 (|x| <= 127) leave room in 16 bits: maddubs' pair sums (<= 3810)
// can be summed 8 at a time (<= 30480) before widening, so a group's 8 units take 16-bit horizontal adds and one
// widening instead of a madd per unit (partial16, reduce8_16 in the .inc). The sums stay exact.
template <Fmt F>
constexpr bool use16() { return F == Fmt::Q4; }
template <Fmt F>
inline __m256i partial16(const uint8_t* p, const int8_t* x) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  // the 16 bytes in both halves (a load, no shuffle), the high half shifted down a nibble
  const __m256i raw = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2)));
  const __m256i u = _mm256_and_si256(_mm256_srlv_epi64(raw, _mm256_setr_epi64x(0, 0, 4, 4)), m4);
  return _mm256_maddubs_epi16(u, xv);
}
#include "kernels/qdot_simd.inc"
}  // namespace qdot_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
namespace qdot_vnni {
using vk::Fmt;
// vpdpbusd multiplies unsigned by signed bytes: the weight goes in as wq + 128 (Q8_0, NF4) or as its nibble
// (Q4_0), and fix() takes 128 · Σq or 8 · Σq back off.
template <Fmt F>
inline __m256i partial(const uint8_t* p, const int8_t* x, const uint8_t*, __m256i tbl) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
  const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  if (F == Fmt::Q8) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2));
    return _mm256_dpbusd_epi32(zero, _mm256_xor_si256(w, _mm256_set1_epi8((char)0x80)), xv);
  }
  if (F == Fmt::Q4) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
    return _mm256_dpbusd_epi32(zero, _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), m4), xv);
  }
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i idx = _mm256_and_si256(_mm256_set_m128i(raw, _mm_srli_epi16(raw, 4)), m4);
  return _mm256_dpbusd_epi32(zero, _mm256_shuffle_epi8(tbl, idx), xv);
}
template <Fmt F>
inline __m256i fix(__m256i s, __m256i xsum) {
  return _mm256_sub_epi32(s, _mm256_slli_epi32(xsum, F == Fmt::Q4 ? 3 : 7));
}
template <Fmt F>
constexpr bool use16() { return false; }
template <Fmt F>
inline __m256i partial16(const uint8_t*, const int8_t*) { return _mm256_setzero_si256(); }
inline __m256i table() {
  alignas(16) uint8_t t[16];
  for (int i = 0; i < 16; i++) t[i] = (uint8_t)(vk::kNf4I8[i] + 128);
  const __m128i v = _mm_load_si128(reinterpret_cast<const __m128i*>(t));
  return _mm256_set_m128i(v, v);
}
#include "kernels/qdot_simd.inc"
}  // namespace qdot_vnni
#pragma GCC pop_options

namespace {

using RowsFn = void (*)(const Acts&, const void*, int64_t, int64_t, int64_t, const float*, float*, int64_t);
enum class Path { Scalar, Avx2, Vnni };

Path path_now() {
  if (has_avx512() && cpu_features().avx512vnni) return Path::Vnni;
  if (has_avx2() && cpu_has_f16c()) return Path::Avx2;
  return Path::Scalar;
}

template <Fmt F, int MR>
RowsFn pick_mr(Path p) {
  switch (p) {
    case Path::Vnni: return qdot_vnni::rows<F, MR>;
    case Path::Avx2: return qdot_avx2::rows<F, MR>;
    case Path::Scalar: break;
  }
  return rows_scalar<F, MR>;
}

template <Fmt F>
RowsFn pick(Path p, int64_t M) {
  switch (M) {
    case 1: return pick_mr<F, 1>(p);
    case 2: return pick_mr<F, 2>(p);
    case 3: return pick_mr<F, 3>(p);
    case 4: return pick_mr<F, 4>(p);
    case 5: return pick_mr<F, 5>(p);
    case 6: return pick_mr<F, 6>(p);
    case 7: return pick_mr<F, 7>(p);
    default: return pick_mr<F, 8>(p);
  }
}

}  // namespace

namespace {

// The activations of one call quantized into the calling thread's scratch, and the row kernel for them.
struct Prepared {
  Acts a;
  RowsFn f;
};

Prepared prepare(WT wt, int64_t M, int64_t K, const float* A, int64_t lda) {
  const Fmt F = wt == WT::Q8_0 ? Fmt::Q8 : wt == WT::Q4_0 ? Fmt::Q4 : Fmt::NF4;
  Prepared r{};
  Acts& a = r.a;
  a.K = K;
  a.nbp = padded_units(K);
  // one buffer: q, |q|, then d, then sum (K is a multiple of 32, so d and sum stay 32-byte aligned)
  float* buf = scratch(Scratch::QActs, M * K / 2 + 2 * M * a.nbp);
  a.q = reinterpret_cast<int8_t*>(buf);
  a.aq = reinterpret_cast<uint8_t*>(buf + M * K / 4);
  a.d = buf + M * K / 2;
  a.sum = reinterpret_cast<int32_t*>(a.d + M * a.nbp);
  quantize_acts(M, K, A, lda, F == Fmt::NF4, a);
  const Path p = path_now();
  r.f = F == Fmt::Q8 ? pick<Fmt::Q8>(p, M) : F == Fmt::Q4 ? pick<Fmt::Q4>(p, M) : pick<Fmt::NF4>(p, M);
  return r;
}

// Chunks of rows of W, claimed by the pool's threads: boundaries on a 32-row grid (so that the SwiGLU's elementwise
// tail runs its vector path on every element, as over a whole row); one chunk for less than 32 KB of weight (the
// pool's wake-up would cost more than it saves), else one per thread, two when each still streams 128 KB (a thread
// the OS deschedules then costs half a share, not a whole one).
constexpr int64_t kAlign = 32;

int64_t chunk_count(int64_t rows, int64_t row_bytes) {
  const int64_t nt = num_threads(), units = (rows + kAlign - 1) / kAlign;
  if (rows * row_bytes < (32 << 10)) return 1;
  const int64_t want = rows * row_bytes >= 2 * nt * (128 << 10) ? 2 * nt : nt;
  return std::max<int64_t>(1, std::min(units, want));
}

inline int64_t boundary(int64_t rows, int64_t chunks, int64_t c) {
  if (c >= chunks) return rows;
  const int64_t units = (rows + kAlign - 1) / kAlign;
  return std::min(rows, units * c / chunks * kAlign);
}

}  // namespace

void qdot_linear(WT wt, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const void* W, const float* bias,
                 float* C, int64_t ldc) {
  const Prepared pr = prepare(wt, M, K, A, lda);
  // contiguous ranges of rows of W (one sequential stream each), claimed by the threads as the fused calls' chunks
  const int64_t chunks = chunk_count(N, wt_row_bytes(wt, K));
  parallel_tasks(chunks, [&](int64_t c) {
    const int64_t b = boundary(N, chunks, c), e = boundary(N, chunks, c + 1);
    if (b < e) pr.f(pr.a, W, K, b, e, bias, C, ldc);
  });
}

void qdot_linears(WT wt, int64_t M, int64_t K, const float* A, int64_t lda, int count, const void* const* W,
                  const int64_t* N, float* const* C) {
  if (M <= 0 || count <= 0) return;
  const Prepared pr = prepare(wt, M, K, A, lda);
  std::vector<int64_t> start((size_t)count + 1, 0);
  for (int i = 0; i < count; i++) start[i + 1] = start[i] + N[i];
  const int64_t rows = start[count];
  const int64_t chunks = chunk_count(rows, wt_row_bytes(wt, K));
  parallel_tasks(chunks, [&](int64_t c) {
    const int64_t g0 = boundary(rows, chunks, c), g1 = boundary(rows, chunks, c + 1);
    for (int i = 0; i < count; i++) {
      const int64_t r0 = std::max(g0, start[i]) - start[i], r1 = std::min(g1, start[i + 1]) - start[i];
      if (r0 < r1) pr.f(pr.a, W[i], K, r0, r1, nullptr, C[i], N[i]);
    }
  });
}

void qdot_swiglu(WT wt, int64_t M, int64_t K, const float* A, int64_t lda, const void* Wg, const void* Wu, int64_t N,
                 float* y) {
  if (M <= 0 || N <= 0) return;
  const Prepared pr = prepare(wt, M, K, A, lda);
  const int64_t chunks = chunk_count(N, 2 * wt_row_bytes(wt, K));
  // each chunk: its gate rows, then its up rows (two sequential streams), then silu(gate) ⊙ up into its columns,
  // through the same elementwise kernels as the unfused ops
  parallel_tasks(chunks, [&](int64_t c) {
    const int64_t c0 = boundary(N, chunks, c), c1 = boundary(N, chunks, c + 1), wd = c1 - c0;
    if (wd <= 0) return;
    float* g = scratch(Scratch::FusedGate, M * N);
    float* u = scratch(Scratch::FusedUp, M * N);
    pr.f(pr.a, Wg, K, c0, c1, nullptr, g, N);
    pr.f(pr.a, Wu, K, c0, c1, nullptr, u, N);
    for (int64_t m = 0; m < M; m++) {
      unary_flat_f32(UnaryOp::Silu, wd, g + m * N + c0, g + m * N + c0);
      binary_flat_f32(BinaryOp::Mul, wd, g + m * N + c0, 1, u + m * N + c0, 1, y + m * N + c0);
    }
  });
}

}  // namespace vk
