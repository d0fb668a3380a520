// Reduction kernels: rows (inner == 1) vectorise along the row; otherwise tiles of 32 columns of `inner`
// vectorise across columns while walking the reduced axis. Long single rows are split into fixed chunks whose
// partial results are combined in order, so the result does not depend on the thread count.
#include "kernels/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "core/pool.h"
#include "kernels/split.h"
#include "kernels/vmath.h"

namespace vk {
namespace {

using namespace vm;

constexpr int64_t kChunk = 1 << 15;  // elements per task when one row is split
constexpr int64_t kTile = 32;        // columns per tile when inner > 1

struct Best {
  float v;
  int64_t i;
};
// torch/reference rule: a later element wins when strictly greater, or when it is NaN and the best is not.
inline bool better(float e, float best) { return e > best || (std::isnan(e) && !std::isnan(best)); }

// ---------------------------------------------------------------- rows
double sum_row_scalar(const float* x, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += x[i];
    s1 += x[i + 1];
    s2 += x[i + 2];
    s3 += x[i + 3];
  }
  for (; i < n; i++) s0 += x[i];
  return (s0 + s1) + (s2 + s3);
}

VK_AVX2 double sum_row_avx2(const float* x, int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(v0)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(v0, 1)));
    a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm256_castps256_ps128(v1)));
    a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm256_extractf128_ps(v1, 1)));
  }
  double s = hsum_pd(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
  for (; i < n; i++) s += x[i];
  return s;
}

Best max_row_scalar(const float* x, int64_t n, int64_t base) {
  Best b{-std::numeric_limits<float>::infinity(), base};
  for (int64_t i = 0; i < n; i++)
    if (better(x[i], b.v)) b = {x[i], base + i};
  return b;
}

VK_AVX2 Best max_row_avx2(const float* x, int64_t n, int64_t base) {
  Best b{-std::numeric_limits<float>::infinity(), base};
  int64_t i = 0;
  if (n >= 8) {
    __m256 best = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    __m256i bidx = _mm256_setzero_si256();
    __m256i cur = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i step = _mm256_set1_epi32(8);
    for (; i + 8 <= n; i += 8) {
      __m256 v = _mm256_loadu_ps(x + i);
      __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ),
                                 _mm256_andnot_ps(_mm256_cmp_ps(best, best, _CMP_UNORD_Q),
                                                  _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
      best = _mm256_blendv_ps(best, v, take);
      bidx = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(bidx), _mm256_castsi256_ps(cur), take));
      cur = _mm256_add_epi32(cur, step);
    }
    alignas(32) float bv[8];
    alignas(32) int32_t bi[8];
    _mm256_store_ps(bv, best);
    _mm256_store_si256((__m256i*)bi, bidx);
    // lanes hold the first winner of their own subsequence; pick across lanes by value, then lowest index
    int w = 0;
    for (int l = 1; l < 8; l++) {
      bool wn = std::isnan(bv[w]), ln = std::isnan(bv[l]);
      if (wn || ln) {
        if (ln && (!wn || bi[l] < bi[w])) w = l;
      } else if (bv[l] > bv[w] || (bv[l] == bv[w] && bi[l] < bi[w])) {
        w = l;
      }
    }
    b = {bv[w], base + bi[w]};
  }
  for (; i < n; i++)
    if (better(x[i], b.v)) b = {x[i], base + i};
  return b;
}

double sum_row(const float* x, int64_t n) { return has_avx2() ? sum_row_avx2(x, n) : sum_row_scalar(x, n); }
Best max_row(const float* x, int64_t n, int64_t base) {
  return has_avx2() ? max_row_avx2(x, n, base) : max_row_scalar(x, n, base);
}

// ---------------------------------------------------------------- columns: tile [n, w <= 32] at stride inner
void sum_tile_scalar(const float* x, int64_t n, int64_t inner, int64_t w, double* acc) {
  for (int64_t j = 0; j < w; j++) acc[j] = 0;
  for (int64_t k = 0; k < n; k++)
    for (int64_t j = 0; j < w; j++) acc[j] += x[k * inner + j];
}
VK_AVX2 void sum_tile_avx2(const float* x, int64_t n, int64_t inner, int64_t w, double* acc) {
  if (w != kTile) return sum_tile_scalar(x, n, inner, w, acc);
  __m256d a[8];
  for (int q = 0; q < 8; q++) a[q] = _mm256_setzero_pd();
  for (int64_t k = 0; k < n; k++) {
    const float* p = x + k * inner;
    for (int q = 0; q < 4; q++) {
      __m256 v = _mm256_loadu_ps(p + 8 * q);
      a[2 * q] = _mm256_add_pd(a[2 * q], _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
      a[2 * q + 1] = _mm256_add_pd(a[2 * q + 1], _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
  }
  for (int q = 0; q < 8; q++) _mm256_storeu_pd(acc + 4 * q, a[q]);
}

void max_tile_scalar(const float* x, int64_t n, int64_t inner, int64_t w, float* bv, int32_t* bi) {
  for (int64_t j = 0; j < w; j++) {
    bv[j] = -std::numeric_limits<float>::infinity();
    bi[j] = 0;
  }
  for (int64_t k = 0; k < n; k++)
    for (int64_t j = 0; j < w; j++)
      if (better(x[k * inner + j], bv[j])) {
        bv[j] = x[k * inner + j];
        bi[j] = (int32_t)k;
      }
}
VK_AVX2 void max_tile_avx2(const float* x, int64_t n, int64_t inner, int64_t w, float* bv, int32_t* bi) {
  if (w != kTile) return max_tile_scalar(x, n, inner, w, bv, bi);
  __m256 best[4];
  __m256i idx[4];
  for (int q = 0; q < 4; q++) {
    best[q] = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
    idx[q] = _mm256_setzero_si256();
  }
  for (int64_t k = 0; k < n; k++) {
    const float* p = x + k * inner;
    __m256i kk = _mm256_set1_epi32((int32_t)k);
    for (int q = 0; q < 4; q++) {
      __m256 v = _mm256_loadu_ps(p + 8 * q);
      __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, best[q], _CMP_GT_OQ),
                                 _mm256_andnot_ps(_mm256_cmp_ps(best[q], best[q], _CMP_UNORD_Q),
                                                  _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
      best[q] = _mm256_blendv_ps(best[q], v, take);
      idx[q] = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(idx[q]), _mm256_castsi256_ps(kk), take));
    }
  }
  for (int q = 0; q < 4; q++) {
    _mm256_storeu_ps(bv + 8 * q, best[q]);
    _mm256_storeu_si256((__m256i*)(bi + 8 * q), idx[q]);
  }
}

void write(ReduceOp op, void* out, int64_t at, double sum, int64_t n) {
  float* o = static_cast<float*>(out);
  o[at] = op == ReduceOp::Mean ? (float)(sum / (double)n) : (float)sum;
}

}  // namespace

double sum_f64(const float* x, int64_t n) { return sum_row(x, n); }

void reduce_f32(ReduceOp op, int64_t outer, int64_t n, int64_t inner, const float* x, void* out) {
  if (op < ReduceOp::Sum || op >= ReduceOp::Count) throw std::runtime_error("unknown reduce op");
  const bool is_sum = op == ReduceOp::Sum || op == ReduceOp::Mean;
  float* of = static_cast<float*>(out);
  int32_t* oi = static_cast<int32_t*>(out);
  auto put_best = [&](int64_t at, Best b) {
    if (op == ReduceOp::Argmax) oi[at] = (int32_t)b.i;
    else of[at] = b.v;
  };
  if (outer * inner == 0) return;

  if (inner == 1) {
    if (outer >= num_threads() || n < 2 * kChunk) {
      int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(n, 1));
      for_chunks(outer, grain, std::max<int64_t>(1, 65536 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; o++) {
          const float* r = x + o * n;
          if (is_sum) write(op, out, o, sum_row(r, n), n);
          else put_best(o, max_row(r, n, 0));
        }
      });
      return;
    }
    // few long rows: fixed chunks in parallel, combined in order
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    std::vector<double> sums((size_t)chunks);
    std::vector<Best> bests((size_t)chunks);
    for (int64_t o = 0; o < outer; o++) {
      const float* r = x + o * n;
      parallel_tasks(chunks, [&](int64_t c) {
        int64_t b = c * kChunk, len = std::min(kChunk, n - b);
        if (is_sum) sums[(size_t)c] = sum_row(r + b, len);
        else bests[(size_t)c] = max_row(r + b, len, b);
      });
      if (is_sum) {
        double s = 0;
        for (double v : sums) s += v;
        write(op, out, o, s, n);
      } else {
        Best b = bests[0];
        for (int64_t c = 1; c < chunks; c++)
          if (better(bests[(size_t)c].v, b.v)) b = bests[(size_t)c];
        put_best(o, b);
      }
    }
    return;
  }

  // inner > 1: tiles of up to 32 columns
  const int64_t tiles_per = (inner + kTile - 1) / kTile;
  const int64_t tiles = outer * tiles_per;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(n * kTile, 1));
  const bool avx = has_avx2();
  for_chunks(tiles, grain, std::max<int64_t>(1, 65536 / std::max<int64_t>(n * kTile, 1)), [&](int64_t b, int64_t e) {
    double acc[kTile];
    float bv[kTile];
    int32_t bi[kTile];
    for (int64_t t = b; t < e; t++) {
      int64_t o = t / tiles_per, j0 = (t % tiles_per) * kTile, w = std::min(kTile, inner - j0);
      const float* p = x + o * n * inner + j0;
      if (is_sum) {
        if (avx) sum_tile_avx2(p, n, inner, w, acc);
        else sum_tile_scalar(p, n, inner, w, acc);
        for (int64_t j = 0; j < w; j++) write(op, out, o * inner + j0 + j, acc[j], n);
      } else {
        if (avx) max_tile_avx2(p, n, inner, w, bv, bi);
        else max_tile_scalar(p, n, inner, w, bv, bi);
        for (int64_t j = 0; j < w; j++) put_best(o * inner + j0 + j, Best{bv[j], bi[j]});
      }
    }
  });
}

}  // namespace vk
