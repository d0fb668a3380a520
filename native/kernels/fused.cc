// Fused inference kernels; see fused.h. Few rows (M <= 8, decode) on AVX2: x is packed once, the rows of every
// weight of the call are laid end to end and cut into a few chunks (16-row aligned) that the pool's threads claim;
// each chunk runs gemm's dot kernel serially over its rows, so each
// thread streams one long run of weight bytes instead of one short run per weight. Every output element is
// computed exactly as an unfused gemm computes it (the dot kernel treats each weight row on its own, whatever
// the split). Prompt-sized rows (gemm's gemm_nt path): x is packed once for all the weights of the call and the
// 16-column strips of every weight are shared out over the pool (the kernel sums each element in the same order
// whatever the split, so the results equal separate gemm calls bit for bit). More rows: one gemm per weight (each
// parallel on its own), then the elementwise tail.
#include "kernels/fused.h"

#include <algorithm>
#include <utility>
#include <cstring>
#include <vector>

#include "core/pool.h"
#include "core/scratch.h"
#include "kernels/elementwise.h"
#include "kernels/gemm_nt.h"
#include "kernels/norm.h"
#include "kernels/rope.h"

namespace vk {
namespace {

// gemm's dot kernels serve up to this many rows of x (kDotMaxRows in matmul.cc) on CPUs with these features.
constexpr int64_t kFewRows = 8;
constexpr int64_t kAlign = 32;               // chunk boundaries, in weight rows (= output columns)
constexpr int64_t kChunkBytes = 128 << 10;  // a chunk streams at least this much weight when there is enough

inline int64_t wt_bytes(WT t) { return t == WT::F32 ? 4 : 2; }

inline const void* rows_at(const void* w, int64_t row, int64_t K, WT wt) {
  return static_cast<const char*>(w) + row * K * wt_bytes(wt);
}

// Chunk count for `rows` weight rows of `row_bytes` each against M rows of x. One row of x is memory-bound: one
// chunk per thread, two when each still streams kChunkBytes (a thread the OS deschedules then costs half a share,
// not a whole one). More rows of x are compute-bound: smaller chunks (four per thread) even out the threads'
// finishing times.
int64_t chunk_count(int64_t rows, int64_t row_bytes, int64_t M) {
  const int64_t nt = num_threads();
  const int64_t units = (rows + kAlign - 1) / kAlign;
  const int64_t want = M >= 4 ? 4 * nt : rows * row_bytes >= 2 * nt * kChunkBytes ? 2 * nt : nt;
  return std::max<int64_t>(1, std::min(units, want));
}

// Boundary c of `chunks` over `rows`, on a kAlign grid.
inline int64_t boundary(int64_t rows, int64_t chunks, int64_t c) {
  if (c >= chunks) return rows;
  const int64_t units = (rows + kAlign - 1) / kAlign;
  return std::min(rows, units * c / chunks * kAlign);
}

// Whether gemm takes its gemm_nt path for M rows of this weight type (then the fused ops use the kernel directly).
inline bool nt_rows(int64_t M, int64_t K, WT wt) {
  return M > kFewRows && K > 0 && gemm_nt_takes(M, wt);
}

// Columns [c0, c0 + wd) of a SwiGLU: `cols(g, u)` fills the gate and up products [M, wd] (row stride wd), then
// y[:, c0:c0+wd) = silu(g) ⊙ u, row by row.
template <typename Cols>
void swiglu_columns(int64_t M, int64_t N, int64_t c0, int64_t wd, float* y, Cols&& cols) {
  if (wd <= 0) return;
  float* g = scratch(Scratch::FusedGate, M * wd);
  float* u = scratch(Scratch::FusedUp, M * wd);
  cols(g, u);
  for (int64_t m = 0; m < M; m++) {
    unary_flat_f32(UnaryOp::Silu, wd, g + m * wd, g + m * wd);
    binary_flat_f32(BinaryOp::Mul, wd, g + m * wd, 1, u + m * wd, 1, y + m * N + c0);
  }
}

}  // namespace

void fused_linears(int64_t M, int64_t K, const float* x, int64_t ldx, WT wt, int count, const void* const* w,
                   const int64_t* n, float* const* y) {
  if (M <= 0) return;
  if (nt_rows(M, K, wt)) {
    const float* xp = gemm_nt_pack_local(M, K, x, ldx);
    std::vector<std::pair<int, int64_t>> strips;  // (weight, first column) of every strip of every weight
    for (int i = 0; i < count; i++)
      for (int64_t c = 0; c < n[i]; c += kAlign) strips.push_back({i, c});
    const auto [tasks, per] = gemm_nt_tasks((int64_t)strips.size());
    parallel_tasks(tasks, [&](int64_t t) {
      for (int64_t s = t * per; s < std::min<int64_t>((int64_t)strips.size(), (t + 1) * per); s++) {
        const auto [i, c] = strips[(size_t)s];
        gemm_nt_cols(xp, M, K, w[i], wt, K, c, std::min(n[i], c + kAlign), nullptr, y[i], n[i]);
      }
    });
    return;
  }
  if (!gemm_dot_available(M) || K <= 0) {
    for (int i = 0; i < count; i++) gemm(false, true, M, n[i], K, x, ldx, w[i], wt, K, nullptr, y[i], n[i]);
    return;
  }
  std::vector<int64_t> start((size_t)count + 1, 0);
  for (int i = 0; i < count; i++) start[i + 1] = start[i] + n[i];
  const int64_t rows = start[count];
  const int64_t chunks = chunk_count(rows, K * wt_bytes(wt), M);
  const float* xp = gemm_dot_pack_local(wt, M, K, x, ldx);  // once for every chunk of every weight
  parallel_tasks(chunks, [&](int64_t c) {
    const int64_t g0 = boundary(rows, chunks, c), g1 = boundary(rows, chunks, c + 1);
    for (int i = 0; i < count; i++) {
      const int64_t r0 = std::max(g0, start[i]) - start[i], r1 = std::min(g1, start[i + 1]) - start[i];
      if (r0 < r1) gemm_dot_cols(xp, M, K, w[i], wt, K, r0, r1, nullptr, y[i], n[i]);
    }
  });
}

void fused_swiglu(int64_t M, int64_t K, const float* x, int64_t ldx, WT wt, const void* wg, const void* wu, int64_t N,
                  float* y) {
  if (M <= 0 || N <= 0) return;
  if (nt_rows(M, K, wt)) {
    // each task: its columns of gate and of up, then silu ⊙ up into those columns of y
    const float* xp = gemm_nt_pack_local(M, K, x, ldx);
    const auto [tasks, per] = gemm_nt_tasks((N + kAlign - 1) / kAlign);
    parallel_tasks(tasks, [&](int64_t t) {
      const int64_t c0 = t * per * kAlign, c1 = std::min(N, (t + 1) * per * kAlign), wd = c1 - c0;
      swiglu_columns(M, N, c0, wd, y, [&](float* g, float* u) {
        gemm_nt_cols(xp, M, K, rows_at(wg, c0, K, wt), wt, K, 0, wd, nullptr, g, wd);
        gemm_nt_cols(xp, M, K, rows_at(wu, c0, K, wt), wt, K, 0, wd, nullptr, u, wd);
      });
    });
    return;
  }
  if (!gemm_dot_available(M) || K <= 0) {
    std::vector<float> up((size_t)(M * N));
    gemm(false, true, M, N, K, x, ldx, wg, wt, K, nullptr, y, N);
    gemm(false, true, M, N, K, x, ldx, wu, wt, K, nullptr, up.data(), N);
    unary_flat_f32(UnaryOp::Silu, M * N, y, y);
    binary_flat_f32(BinaryOp::Mul, M * N, y, 1, up.data(), 1, y);
    return;
  }
  // Each chunk: its gate rows, then its up rows (two sequential streams), then silu ⊙ up into its columns. Chunk
  // widths are multiples of 8, so the elementwise kernels take their vector path for every element, as they do
  // over the whole unfused row.
  const int64_t chunks = chunk_count(N, 2 * K * wt_bytes(wt), M);
  const float* xp = gemm_dot_pack_local(wt, M, K, x, ldx);
  parallel_tasks(chunks, [&](int64_t c) {
    const int64_t c0 = boundary(N, chunks, c), c1 = boundary(N, chunks, c + 1), wd = c1 - c0;
    swiglu_columns(M, N, c0, wd, y, [&](float* g, float* u) {
      gemm_dot_cols(xp, M, K, rows_at(wg, c0, K, wt), wt, K, 0, wd, nullptr, g, wd);
      gemm_dot_cols(xp, M, K, rows_at(wu, c0, K, wt), wt, K, 0, wd, nullptr, u, wd);
    });
  });
}

void fused_add_rms_norm(int64_t R, int64_t D, const float* x, const float* r, const float* w, float eps, float* s,
                        float* y) {
  if (R <= 0 || D <= 0) return;
  binary_flat_f32(BinaryOp::Add, R * D, x, 1, r, 1, s);
  std::vector<float> rstd((size_t)R);
  rms_norm_forward(R, D, s, w, eps, y, rstd.data());
}

void fused_rope_append_kv(int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, View4 q, View4 k, View4 v,
                          const void* positions, bool pos64, const float* inv_freq, float* q_out, View4 kc, View4 vc,
                          int64_t at) {
  if (B * T * D == 0) return;
  rope(B, Hq, T, D, q.p, q.sb, q.sh, q.st, positions, pos64, inv_freq, false, q_out);
  std::vector<float> kr((size_t)(B * Hkv * T * D));
  rope(B, Hkv, T, D, k.p, k.sb, k.sh, k.st, positions, pos64, inv_freq, false, kr.data());
  const size_t row = (size_t)D * sizeof(float);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < Hkv; h++)
      for (int64_t t = 0; t < T; t++) {
        std::memcpy(kc.p + b * kc.sb + h * kc.sh + (at + t) * kc.st, kr.data() + ((b * Hkv + h) * T + t) * D, row);
        std::memcpy(vc.p + b * vc.sb + h * vc.sh + (at + t) * vc.st, v.p + b * v.sb + h * v.sh + t * v.st, row);
      }
}

}  // namespace vk
