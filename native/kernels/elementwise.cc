// Elementwise kernels: unary ops, their derivatives, and broadcasting binary ops, AVX2 with a scalar fallback.
#include "kernels/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "core/pool.h"
#include "kernels/split.h"
#include "kernels/vmath.h"

namespace vk {
namespace {

using namespace vm;

// Items per thread below which the pool is not worth waking: cheap ops move ~16 B/element, so 32K elements is
// ~0.5 MB of traffic (tens of microseconds); transcendental ops cost ~10x more per element.
constexpr int64_t kGrainCheap = 32768;
constexpr int64_t kGrainHeavy = 4096;
// Chunk claimed by one thread at a time (see split.h): ~256 KB of output, a few tens of microseconds.
constexpr int64_t kChunkItems = 65536;
constexpr int64_t kChunk = 256;  // gather buffer for strided runs

// ================================================================ unary functors: v = 8 lanes, s = scalar
#define UNARY(Name, VEXPR, SEXPR)                                        \
  struct Name {                                                          \
    VK_AVX2_INLINE __m256 v(__m256 x) { return VEXPR; }                  \
    static inline float s(float x) { return SEXPR; }                     \
  };
UNARY(UNeg, _mm256_xor_ps(x, set1(-0.0f)), -x)
UNARY(UExp, exp8(x), std::exp(x))
UNARY(ULog, log8(x), std::log(x))
UNARY(USqrt, _mm256_sqrt_ps(x), std::sqrt(x))
UNARY(URsqrt, _mm256_div_ps(set1(1.0f), _mm256_sqrt_ps(x)), 1.0f / std::sqrt(x))
UNARY(UTanh, tanh8(x), std::tanh(x))
UNARY(USigmoid, sigmoid8(x), sigmoid1(x))
UNARY(USilu, _mm256_mul_ps(x, sigmoid8(x)), x * sigmoid1(x))
UNARY(UGelu, gelu8(x), gelu1(x))
UNARY(UGeluTanh, gelu_tanh8(x), gelu_tanh1(x))
UNARY(ULogSigmoid, logsigmoid8(x), logsigmoid1(x))
// relu keeps NaN (x <= 0 is false for NaN), like torch
UNARY(URelu, _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LE_OQ), x), x <= 0 ? 0.0f : x)
UNARY(UAbs, vabs(x), std::fabs(x))
UNARY(USquare, _mm256_mul_ps(x, x), x* x)
#undef UNARY

// ================================================================ derivative functors: gy * f'(x)
VK_AVX2_INLINE __m256 sign8(__m256 x) {
  __m256 one = set1(1.0f), z = _mm256_setzero_ps();
  __m256 s = _mm256_sub_ps(_mm256_and_ps(_mm256_cmp_ps(x, z, _CMP_GT_OQ), one),
                           _mm256_and_ps(_mm256_cmp_ps(x, z, _CMP_LT_OQ), one));
  return _mm256_or_ps(s, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));  // NaN stays NaN
}
VK_AVX2_INLINE __m256 tanh_d8(__m256 x) {  // 1 - tanh^2 = 4 s(1-s), s = sigmoid(2x)
  __m256 s, o;
  sigmoid_parts8(_mm256_add_ps(x, x), s, o);
  return _mm256_mul_ps(set1(4.0f), _mm256_mul_ps(s, o));
}
VK_AVX2_INLINE __m256 sigmoid_d8(__m256 x) {
  __m256 s, o;
  sigmoid_parts8(x, s, o);
  return _mm256_mul_ps(s, o);
}
VK_AVX2_INLINE __m256 silu_d8(__m256 x) {  // s (1 + x (1-s))
  __m256 s, o;
  sigmoid_parts8(x, s, o);
  return _mm256_mul_ps(s, _mm256_fmadd_ps(x, o, set1(1.0f)));
}
VK_AVX2_INLINE __m256 logsigmoid_d8(__m256 x) {  // 1 - s
  __m256 s, o;
  sigmoid_parts8(x, s, o);
  return o;
}
inline float sign1(float x) { return x > 0 ? 1.0f : x < 0 ? -1.0f : x == 0 ? 0.0f : x; }
inline float tanh_d1(float x) { float t = std::tanh(x); return (1.0f - t) * (1.0f + t); }
inline float sigmoid_d1(float x) { return sigmoid1(x) * sigmoid1(-x); }
inline float silu_d1(float x) { float s = sigmoid1(x); return s * (1.0f + x * sigmoid1(-x)); }

#define DERIV(Name, VEXPR, SEXPR)                                                  \
  struct Name {                                                                    \
    VK_AVX2_INLINE __m256 v(__m256 x, __m256 g) { return VEXPR; }                  \
    static inline float s(float x, float g) { return SEXPR; }                      \
  };
DERIV(DNeg, _mm256_xor_ps(g, set1(-0.0f)), -g)
DERIV(DExp, _mm256_mul_ps(g, exp8(x)), g* std::exp(x))
DERIV(DLog, _mm256_div_ps(g, x), g / x)
DERIV(DSqrt, _mm256_div_ps(_mm256_mul_ps(set1(0.5f), g), _mm256_sqrt_ps(x)), 0.5f * g / std::sqrt(x))
DERIV(DRsqrt, _mm256_div_ps(_mm256_mul_ps(set1(-0.5f), g), _mm256_mul_ps(x, _mm256_sqrt_ps(x))),
      -0.5f * g / (x * std::sqrt(x)))
DERIV(DTanh, _mm256_mul_ps(g, tanh_d8(x)), g* tanh_d1(x))
DERIV(DSigmoid, _mm256_mul_ps(g, sigmoid_d8(x)), g* sigmoid_d1(x))
DERIV(DSilu, _mm256_mul_ps(g, silu_d8(x)), g* silu_d1(x))
DERIV(DGelu, _mm256_mul_ps(g, gelu_d8(x)), g* gelu_d1(x))
DERIV(DGeluTanh, _mm256_mul_ps(g, gelu_tanh_d8(x)), g* gelu_tanh_d1(x))
DERIV(DLogSigmoid, _mm256_mul_ps(g, logsigmoid_d8(x)), g* sigmoid1(-x))
DERIV(DRelu, _mm256_mul_ps(g, _mm256_and_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ), set1(1.0f))),
      g*(x > 0 ? 1.0f : 0.0f))
DERIV(DAbs, _mm256_mul_ps(g, sign8(x)), g* sign1(x))
DERIV(DSquare, _mm256_mul_ps(g, _mm256_add_ps(x, x)), g * 2.0f * x)
#undef DERIV

// ================================================================ binary functors
VK_AVX2_INLINE __m256 pow8(__m256 a, __m256 b) {
  alignas(32) float ta[8], tb[8];
  _mm256_store_ps(ta, a);
  _mm256_store_ps(tb, b);
  for (int i = 0; i < 8; i++) ta[i] = std::pow(ta[i], tb[i]);
  return _mm256_load_ps(ta);
}
// max/min propagate NaN from either side (max_ps returns its second operand when either is NaN).
VK_AVX2_INLINE __m256 max8(__m256 a, __m256 b) {
  return _mm256_blendv_ps(_mm256_max_ps(a, b), a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
}
VK_AVX2_INLINE __m256 min8(__m256 a, __m256 b) {
  return _mm256_blendv_ps(_mm256_min_ps(a, b), a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
}
inline float max1(float a, float b) { return std::isnan(a) || std::isnan(b) ? NAN : (a > b ? a : b); }
inline float min1(float a, float b) { return std::isnan(a) || std::isnan(b) ? NAN : (a < b ? a : b); }

#define BIN(Name, VEXPR, SEXPR)                                                    \
  struct Name {                                                                    \
    VK_AVX2_INLINE __m256 v(__m256 a, __m256 b) { return VEXPR; }                  \
    static inline float s(float a, float b) { return SEXPR; }                      \
  };
BIN(BAdd, _mm256_add_ps(a, b), a + b)
BIN(BSub, _mm256_sub_ps(a, b), a - b)
BIN(BMul, _mm256_mul_ps(a, b), a* b)
BIN(BDiv, _mm256_div_ps(a, b), a / b)
BIN(BPow, pow8(a, b), std::pow(a, b))
BIN(BMax, max8(a, b), max1(a, b))
BIN(BMin, min8(a, b), min1(a, b))
#undef BIN

// ================================================================ flat loops
// Tails (and, with streaming stores, the unaligned head) go through the same 8-lane code on a padded copy, so an
// element's result never depends on where it sits. Streaming (non-temporal) stores are used for outputs too large
// to stay in the L3 for the next op: they skip the read-for-ownership of the destination, as memcpy does.
constexpr int64_t kStreamBytes = 16 << 20;

template <class F>
VK_AVX2 void pad1(int64_t m, const float* x, float* y) {
  alignas(32) float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(t, x, (size_t)m * 4);
  _mm256_store_ps(t, F::v(_mm256_load_ps(t)));
  std::memcpy(y, t, (size_t)m * 4);
}
// elements before y + i is 32-byte aligned (y is at least 4-byte aligned)
inline int64_t head_to_align(const float* y, int64_t n) {
  int64_t h = (int64_t)(((32 - ((uintptr_t)y & 31)) & 31) / 4);
  return h < n ? h : n;
}

template <class F, bool NT>
VK_AVX2 void map1_avx2(int64_t n, const float* x, float* y) {
  int64_t i = 0;
  if (NT) {
    i = head_to_align(y, n);
    if (i) pad1<F>(i, x, y);
    for (; i + 16 <= n; i += 16) {
      __m256 a = F::v(_mm256_loadu_ps(x + i)), b = F::v(_mm256_loadu_ps(x + i + 8));
      _mm256_stream_ps(y + i, a);
      _mm256_stream_ps(y + i + 8, b);
    }
    for (; i + 8 <= n; i += 8) _mm256_stream_ps(y + i, F::v(_mm256_loadu_ps(x + i)));
    _mm_sfence();
  } else {
    for (; i + 16 <= n; i += 16) {
      __m256 a = F::v(_mm256_loadu_ps(x + i)), b = F::v(_mm256_loadu_ps(x + i + 8));
      _mm256_storeu_ps(y + i, a);
      _mm256_storeu_ps(y + i + 8, b);
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, F::v(_mm256_loadu_ps(x + i)));
  }
  if (i < n) pad1<F>(n - i, x + i, y + i);
}
template <class F>
void map1_scalar(int64_t n, const float* x, float* y) {
  for (int64_t i = 0; i < n; i++) y[i] = F::s(x[i]);
}

// Two inputs, each either contiguous (stride 1) or one broadcast value (stride 0): SA/SB fixed at compile time.
template <class F, int SA, int SB>
VK_AVX2 void pad2(int64_t m, const float* a, const float* b, float* y) {
  alignas(32) float ta[8] = {0, 0, 0, 0, 0, 0, 0, 0}, tb[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  if (SA) std::memcpy(ta, a, (size_t)m * 4); else for (int k = 0; k < 8; k++) ta[k] = a[0];
  if (SB) std::memcpy(tb, b, (size_t)m * 4); else for (int k = 0; k < 8; k++) tb[k] = b[0];
  _mm256_store_ps(ta, F::v(_mm256_load_ps(ta), _mm256_load_ps(tb)));
  std::memcpy(y, ta, (size_t)m * 4);
}
template <class F, int SA, int SB, bool NT>
VK_AVX2 void map2_avx2(int64_t n, const float* a, const float* b, float* y) {
  const __m256 ab = _mm256_set1_ps(a[0]), bb = _mm256_set1_ps(b[0]);
#define la(i) (SA ? _mm256_loadu_ps(a + (i)) : ab)
#define lb(i) (SB ? _mm256_loadu_ps(b + (i)) : bb)
  int64_t i = 0;
  if (NT) {
    i = head_to_align(y, n);
    if (i) pad2<F, SA, SB>(i, a, b, y);
    for (; i + 16 <= n; i += 16) {
      __m256 r0 = F::v(la(i), lb(i)), r1 = F::v(la(i + 8), lb(i + 8));
      _mm256_stream_ps(y + i, r0);
      _mm256_stream_ps(y + i + 8, r1);
    }
    for (; i + 8 <= n; i += 8) _mm256_stream_ps(y + i, F::v(la(i), lb(i)));
    _mm_sfence();
  } else {
    for (; i + 16 <= n; i += 16) {
      __m256 r0 = F::v(la(i), lb(i)), r1 = F::v(la(i + 8), lb(i + 8));
      _mm256_storeu_ps(y + i, r0);
      _mm256_storeu_ps(y + i + 8, r1);
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, F::v(la(i), lb(i)));
  }
#undef la
#undef lb
  if (i < n) pad2<F, SA, SB>(n - i, SA ? a + i : a, SB ? b + i : b, y + i);
}
template <class F, int SA, int SB>
void map2_scalar(int64_t n, const float* a, const float* b, float* y) {
  for (int64_t i = 0; i < n; i++) y[i] = F::s(a[SA ? i : 0], b[SB ? i : 0]);
}

using Map1 = void (*)(int64_t, const float*, float*);
using Map2 = void (*)(int64_t, const float*, const float*, float*);

template <class F>
Map1 pick1(bool nt) {
  if (!has_avx2()) return map1_scalar<F>;
  return nt ? map1_avx2<F, true> : map1_avx2<F, false>;
}
template <class F, int SA, int SB>
Map2 pick2(bool nt) {
  if (!has_avx2()) return map2_scalar<F, SA, SB>;
  return nt ? map2_avx2<F, SA, SB, true> : map2_avx2<F, SA, SB, false>;
}

Map1 unary_kernel(UnaryOp op, bool nt) {
  switch (op) {
    case UnaryOp::Neg: return pick1<UNeg>(nt);
    case UnaryOp::Exp: return pick1<UExp>(nt);
    case UnaryOp::Log: return pick1<ULog>(nt);
    case UnaryOp::Sqrt: return pick1<USqrt>(nt);
    case UnaryOp::Rsqrt: return pick1<URsqrt>(nt);
    case UnaryOp::Tanh: return pick1<UTanh>(nt);
    case UnaryOp::Sigmoid: return pick1<USigmoid>(nt);
    case UnaryOp::Silu: return pick1<USilu>(nt);
    case UnaryOp::Gelu: return pick1<UGelu>(nt);
    case UnaryOp::GeluTanh: return pick1<UGeluTanh>(nt);
    case UnaryOp::LogSigmoid: return pick1<ULogSigmoid>(nt);
    case UnaryOp::Relu: return pick1<URelu>(nt);
    case UnaryOp::Abs: return pick1<UAbs>(nt);
    case UnaryOp::Square: return pick1<USquare>(nt);
    default: return nullptr;
  }
}
// gx = gy * f'(x): (x, gy) both contiguous
Map2 deriv_kernel(UnaryOp op, bool nt) {
  switch (op) {
    case UnaryOp::Neg: return pick2<DNeg, 1, 1>(nt);
    case UnaryOp::Exp: return pick2<DExp, 1, 1>(nt);
    case UnaryOp::Log: return pick2<DLog, 1, 1>(nt);
    case UnaryOp::Sqrt: return pick2<DSqrt, 1, 1>(nt);
    case UnaryOp::Rsqrt: return pick2<DRsqrt, 1, 1>(nt);
    case UnaryOp::Tanh: return pick2<DTanh, 1, 1>(nt);
    case UnaryOp::Sigmoid: return pick2<DSigmoid, 1, 1>(nt);
    case UnaryOp::Silu: return pick2<DSilu, 1, 1>(nt);
    case UnaryOp::Gelu: return pick2<DGelu, 1, 1>(nt);
    case UnaryOp::GeluTanh: return pick2<DGeluTanh, 1, 1>(nt);
    case UnaryOp::LogSigmoid: return pick2<DLogSigmoid, 1, 1>(nt);
    case UnaryOp::Relu: return pick2<DRelu, 1, 1>(nt);
    case UnaryOp::Abs: return pick2<DAbs, 1, 1>(nt);
    case UnaryOp::Square: return pick2<DSquare, 1, 1>(nt);
    default: return nullptr;
  }
}
template <class F>
void binary_set(Map2* k, bool nt) {
  k[0] = pick2<F, 1, 1>(nt);
  k[1] = pick2<F, 1, 0>(nt);
  k[2] = pick2<F, 0, 1>(nt);
  k[3] = pick2<F, 0, 0>(nt);
}
// [vv, vs, sv, ss]
void binary_kernels(BinaryOp op, Map2* k, bool nt) {
  switch (op) {
    case BinaryOp::Add: return binary_set<BAdd>(k, nt);
    case BinaryOp::Sub: return binary_set<BSub>(k, nt);
    case BinaryOp::Mul: return binary_set<BMul>(k, nt);
    case BinaryOp::Div: return binary_set<BDiv>(k, nt);
    case BinaryOp::Pow: return binary_set<BPow>(k, nt);
    case BinaryOp::Maximum: return binary_set<BMax>(k, nt);
    case BinaryOp::Minimum: return binary_set<BMin>(k, nt);
    default: throw std::runtime_error("unknown binary op");
  }
}

bool heavy_unary(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: case UnaryOp::Relu: case UnaryOp::Abs: case UnaryOp::Square: return false;
    default: return true;
  }
}

// ================================================================ the strided driver
// Dims of size 1 are dropped and neighbours merged where every operand is contiguous across them (the output
// always is). Then [0, n) is split over the pool; each range walks runs of the innermost dim.
struct Layout {
  int nd = 0;
  int64_t shape[kMaxDims];
  int64_t st[2][kMaxDims] = {};
  int64_t n = 1;
};

Layout collapse(int ndim, const int64_t* shape, int nin, const int64_t* const* strides) {
  if (ndim > kMaxDims) throw std::runtime_error("more than 8 dimensions");
  Layout L;
  int64_t rs[kMaxDims], rst[2][kMaxDims];
  int k = 0;
  for (int d = ndim - 1; d >= 0; d--) {
    L.n *= shape[d];
    if (shape[d] == 1) continue;
    bool merge = k > 0;
    for (int q = 0; q < nin && merge; q++) merge = strides[q][d] == rst[q][k - 1] * rs[k - 1];
    if (merge) {
      rs[k - 1] *= shape[d];
    } else {
      rs[k] = shape[d];
      for (int q = 0; q < nin; q++) rst[q][k] = strides[q][d];
      k++;
    }
  }
  if (k == 0) {  // a single element
    rs[0] = 1;
    for (int q = 0; q < nin; q++) rst[q][0] = 0;
    k = 1;
  }
  L.nd = k;
  for (int i = 0; i < k; i++) {
    L.shape[i] = rs[k - 1 - i];
    for (int q = 0; q < nin; q++) L.st[q][i] = rst[q][k - 1 - i];
  }
  return L;
}

// row(len, in0 + off0, inner stride0, in1 + off1, inner stride1, out + pos) for every run of the innermost dim.
template <class Row>
void drive(const Layout& L, const float* in0, const float* in1, float* out, int64_t grain, Row row) {
  if (L.n == 0) return;
  const int nd = L.nd;
  const int64_t inner = L.shape[nd - 1];
  for_chunks(L.n, grain, kChunkItems, [&](int64_t b, int64_t e) {
    int64_t idx[kMaxDims];
    int64_t rem = b;
    for (int d = nd - 1; d >= 0; d--) {
      idx[d] = rem % L.shape[d];
      rem /= L.shape[d];
    }
    int64_t pos = b;
    while (pos < e) {
      int64_t len = std::min(inner - idx[nd - 1], e - pos);
      int64_t o0 = 0, o1 = 0;
      for (int d = 0; d < nd; d++) {
        o0 += idx[d] * L.st[0][d];
        o1 += idx[d] * L.st[1][d];
      }
      row(len, in0 + o0, L.st[0][nd - 1], in1 ? in1 + o1 : nullptr, L.st[1][nd - 1], out + pos);
      pos += len;
      idx[nd - 1] += len;
      for (int d = nd - 1; d > 0 && idx[d] == L.shape[d]; d--) {
        idx[d] = 0;
        idx[d - 1]++;
      }
    }
  });
}

inline void gather(int64_t n, const float* x, int64_t s, float* t) {
  for (int64_t i = 0; i < n; i++) t[i] = x[i * s];
}

}  // namespace

void unary_flat_f32(UnaryOp op, int64_t n, const float* x, float* y) {
  Map1 k = unary_kernel(op, n * 4 >= kStreamBytes);
  if (!k) throw std::runtime_error("unknown unary op");
  for_chunks(n, heavy_unary(op) ? kGrainHeavy : kGrainCheap, kChunkItems, [&](int64_t b, int64_t e) { k(e - b, x + b, y + b); });
}

void unary_f32(UnaryOp op, int ndim, const int64_t* shape, const float* x, const int64_t* xs, float* y) {
  const int64_t* st[1] = {xs};
  Layout L = collapse(ndim, shape, 1, st);
  Map1 k = unary_kernel(op, L.n * 4 >= kStreamBytes);
  if (!k) throw std::runtime_error("unknown unary op");
  drive(L, x, nullptr, y, heavy_unary(op) ? kGrainHeavy : kGrainCheap,
        [&](int64_t len, const float* p, int64_t s, const float*, int64_t, float* o) {
          if (s == 1) return k(len, p, o);
          float t[kChunk];
          for (int64_t i = 0; i < len; i += kChunk) {
            int64_t m = std::min(kChunk, len - i);
            gather(m, p + i * s, s, t);
            k(m, t, o + i);
          }
        });
}

void unary_backward_f32(UnaryOp op, int ndim, const int64_t* shape, const float* x, const int64_t* xs,
                        const float* gy, const int64_t* gs, float* gx) {
  const int64_t* st[2] = {xs, gs};
  Layout L = collapse(ndim, shape, 2, st);
  Map2 k = deriv_kernel(op, L.n * 4 >= kStreamBytes);
  if (!k) throw std::runtime_error("unknown unary op");
  drive(L, x, gy, gx, heavy_unary(op) ? kGrainHeavy : kGrainCheap,
        [&](int64_t len, const float* p, int64_t s, const float* q, int64_t sq, float* o) {
          if (s == 1 && sq == 1) return k(len, p, q, o);
          float t[kChunk], u[kChunk];
          for (int64_t i = 0; i < len; i += kChunk) {
            int64_t m = std::min(kChunk, len - i);
            gather(m, p + i * s, s, t);
            gather(m, q + i * sq, sq, u);
            k(m, t, u, o + i);
          }
        });
}

void binary_flat_f32(BinaryOp op, int64_t n, const float* a, int sa, const float* b, int sb, float* out) {
  Map2 k[4];
  binary_kernels(op, k, n * 4 >= kStreamBytes);
  Map2 f = k[(sa ? 0 : 2) + (sb ? 0 : 1)];
  int64_t grain = op == BinaryOp::Pow ? kGrainHeavy : kGrainCheap;
  for_chunks(n, grain, kChunkItems, [&](int64_t b0, int64_t e) { f(e - b0, sa ? a + b0 : a, sb ? b + b0 : b, out + b0); });
}

void binary_f32(BinaryOp op, int ndim, const int64_t* shape, const float* a, const int64_t* as, const float* b,
                const int64_t* bs, float* out) {
  const int64_t* st[2] = {as, bs};
  Layout L = collapse(ndim, shape, 2, st);
  Map2 k[4];
  binary_kernels(op, k, L.n * 4 >= kStreamBytes);
  int64_t grain = op == BinaryOp::Pow ? kGrainHeavy : kGrainCheap;
  drive(L, a, b, out, grain, [&](int64_t len, const float* p, int64_t s, const float* q, int64_t sq, float* o) {
    if ((s == 0 || s == 1) && (sq == 0 || sq == 1)) return k[(s ? 0 : 2) + (sq ? 0 : 1)](len, p, q, o);
    float t[kChunk], u[kChunk];
    for (int64_t i = 0; i < len; i += kChunk) {
      int64_t m = std::min(kChunk, len - i);
      gather(m, p + i * s, s, t);
      gather(m, q + i * sq, sq, u);
      k[0](m, t, u, o + i);
    }
  });
}

}  // namespace vk
