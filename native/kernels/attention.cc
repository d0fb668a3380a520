// Fused attention, FlashAttention-2 style: block products on AVX2 register tiles (attention_simd.cc; sgemm where
// AVX2 is missing), online softmax with AVX2 row kernels.
//
// Rows: for one (batch, kv head) the query rows of the Hq/Hkv heads that share the kv head are stacked as
// r = i * G + g (query position major, head minor), so grouped-query heads read each K/V block once and a block of
// rows still covers a narrow range of positions (the causal structure stays block-diagonal).
//
// Forward, per task (b, kv head, block of kBQ rows [, key split]): gather the rows of q scaled by scale*log2(e)
// (scores then come out in log2 units and the softmax uses exp2), then for each block of kBK keys: S = Q Kᵀ
// mask (causal tail, key padding), online softmax update (running max m, sum l, rescale of the output
// accumulator, folded into the next product), O += P V. Fully masked key blocks (causal, or all padding) are skipped. When there are
// too few row blocks to keep the pool busy (one-row decode against a long cache), the keys are split across tasks
// and the partial results merged by their log-sum-exp.
//
// Backward (FlashAttention-2): D_i = rowsum(dO_i * O_i) first; then tasks over (b, kv head, key block) recompute
// P = exp2(S - lse) for every row block that can see the key block and accumulate dV += Pᵀ dO, dS = P (dP - D),
// dK += dSᵀ Q into the rows the task owns, and dQ += dS K into one of a few fixed accumulators ("lanes": the key
// blocks are dealt to them in a fixed pattern, each lane walks its blocks in order), summed in lane order into gq at
// the end: no races, a single pass, and the same bits on every run and at any thread count.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "core/blas.h"
#include "core/pool.h"
#include "kernels/attention_simd.h"
#include "kernels/layout.h"

namespace vk {
namespace {

constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2 = 0.693147180559945309f;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kDqLanes = 4;  // dQ accumulators in the backward (fixed: results must not depend on threads)

// Block sizes: rows x keys of the score block, forward and backward. Rows in multiples of 6 (the register tile's
// height), keys in multiples of 16 (the packed key panels); these measured best on the 2-core Zen 3 box, within a
// few percent of 48-96 rows x 64-256 keys.
#ifndef VK_ATTN_BQ
#define VK_ATTN_BQ 72
#define VK_ATTN_BK 128
#define VK_ATTN_BQB 72
#define VK_ATTN_BKB 64
#endif
constexpr int64_t kBQ = VK_ATTN_BQ, kBK = VK_ATTN_BK;
constexpr int64_t kBQb = VK_ATTN_BQB, kBKb = VK_ATTN_BKB;

// ---------------------------------------------------------------------------------------------------------------
// Problem geometry and masks.

bool mask_nonzero(int dt, const void* p, int64_t i) {
  switch ((DT)dt) {
    case DT::F32: return static_cast<const float*>(p)[i] != 0.f;
    case DT::F64: return static_cast<const double*>(p)[i] != 0.0;
    case DT::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]) != 0.f;
    case DT::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]) != 0.f;
    case DT::I32: return static_cast<const int32_t*>(p)[i] != 0;
    case DT::I64: return static_cast<const int64_t*>(p)[i] != 0;
    case DT::U8: return static_cast<const uint8_t*>(p)[i] != 0;
  }
  return true;
}

// Key padding as an additive bias (0 or -inf) and per-batch prefix counts of attendable keys.
struct KeyMask {
  bool on = false;
  int64_t Tk = 0;
  std::vector<float> bias;
  std::vector<int64_t> cnt;
  KeyMask(const AttnProblem& p) : on(p.key_mask != nullptr), Tk(p.Tk) {
    if (!on) return;
    bias.resize(p.B * p.Tk);
    cnt.resize(p.B * (p.Tk + 1));
    for (int64_t b = 0; b < p.B; b++) {
      int64_t c = 0;
      cnt[b * (Tk + 1)] = 0;
      for (int64_t j = 0; j < Tk; j++) {
        bool ok = mask_nonzero(p.mask_dt, p.key_mask, b * Tk + j);
        bias[b * Tk + j] = ok ? 0.f : kNegInf;
        cnt[b * (Tk + 1) + j + 1] = (c += ok);
      }
    }
  }
  // attendable keys of batch b in [k0, k1)
  int64_t allowed(int64_t b, int64_t k0, int64_t k1) const {
    return on ? cnt[b * (Tk + 1) + k1] - cnt[b * (Tk + 1) + k0] : k1 - k0;
  }
  const float* bias_at(int64_t b, int64_t k0) const { return bias.data() + b * Tk + k0; }
};

struct Geo {
  const AttnProblem& p;
  int64_t G, R;  // query heads per kv head; stacked rows per (b, kv head)
  explicit Geo(const AttnProblem& p_) : p(p_), G(p_.Hq / p_.Hkv), R(p_.Hq / p_.Hkv * p_.Tq) {}
  int64_t pos(int64_t r) const { return p.q_offset + r / G; }
  const float* row(const AttnTensor& t, int64_t b, int64_t kvh, int64_t r) const {
    return t.p + b * t.sb + (kvh * G + r % G) * t.sh + (r / G) * t.st;
  }
  // index of stacked row r of (b, kvh) in a contiguous [B, Hq, Tq] layout
  int64_t out_row(int64_t b, int64_t kvh, int64_t r) const { return (b * p.Hq + kvh * G + r % G) * p.Tq + r / G; }
  // keys [0, end) that some row of [r0, r0 + M) may attend
  int64_t key_end(int64_t r0, int64_t M) const {
    if (!p.causal) return p.Tk;
    return std::max<int64_t>(0, std::min<int64_t>(p.Tk, pos(r0 + M - 1) + 1));
  }
  // first stacked row whose position is >= k0 (rows before it see no key of a block starting at k0)
  int64_t first_row_seeing(int64_t k0) const {
    if (!p.causal) return 0;
    int64_t d = k0 - p.q_offset;
    if (d <= 0) return 0;
    if (d >= p.Tq) return R;
    return d * G;
  }
};

// A single row (T == 1) may carry any stride; give it one sgemm accepts.
AttnProblem sanitized(const AttnProblem& p0) {
  AttnProblem p = p0;
  if (p.Tq <= 1) p.q.st = p.D;
  if (p.Tk <= 1) {
    p.k.st = p.D;
    p.v.st = p.Dv;
  }
  return p;
}

struct Scratch {
  std::vector<float> q, s, o, m, l, dp, go, rl, rd;
};
thread_local Scratch tls;
float* grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}


// ---------------------------------------------------------------------------------------------------------------
// Block products: the AVX2 register tiles of attention_gemm.cc, with K (and V for the backward) packed once per call
// as 16-key panels when there are enough rows per kv head to repay it; with few rows (one-row decode) the scores
// are dot products on the key rows in place. sgemm on the strided rows where the CPU has no AVX2 or a head dim is
// not a multiple of 8.

struct Blocks {
  bool tiles = false;   // AVX2 register tiles for the products (head dims multiples of 8)
  bool packed = false;  // and K (and V) packed as panels for the products with keys as columns
  int64_t npan = 0;     // panels per (b, kv head)
  std::vector<float> kp, vp;
  const float* kpanels(int64_t bk, int64_t k0, int64_t D) const {
    return packed ? kp.data() + (bk * npan + k0 / 16) * D * 16 : nullptr;
  }
  const float* vpanels(int64_t bk, int64_t k0, int64_t Dv) const {
    return packed ? vp.data() + (bk * npan + k0 / 16) * Dv * 16 : nullptr;
  }
};

void pack(const AttnTensor& t, const AttnProblem& p, int64_t D, Blocks& bl, std::vector<float>& dst) {
  dst.resize(p.B * p.Hkv * bl.npan * D * 16);
  parallel_for(p.B * p.Hkv * bl.npan, 16, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; u++) {
      const int64_t bk = u / bl.npan, pan = u % bl.npan, b = bk / p.Hkv, kvh = bk % p.Hkv;
      const int64_t j0 = pan * 16;
      attn_pack_panels(t.p + b * t.sb + kvh * t.sh + j0 * t.st, t.st, std::min<int64_t>(16, p.Tk - j0), D,
                       dst.data() + u * D * 16);
    }
  });
}

Blocks make_blocks(const AttnProblem& p, int64_t rows_per_kv, bool with_v) {
  Blocks bl;
  bl.tiles = attn_gemm_available() && p.D % 8 == 0 && p.Dv % 8 == 0;
  bl.packed = bl.tiles && rows_per_kv >= 32;
  if (!bl.packed) return bl;
  bl.npan = (p.Tk + 15) / 16;
  pack(p.k, p, p.D, bl, bl.kp);
  if (with_v) pack(p.v, p, p.Dv, bl, bl.vp);
  return bl;
}

inline int64_t round16(int64_t n) { return (n + 15) & ~int64_t(15); }

// S [M, n] (row stride ld) = Q [M, D] · Xᵀ for the key rows X: on their panels, on the rows in place, or by sgemm.
void mm_nt(const Blocks& bl, int64_t M, int64_t n, int64_t D, const float* Q, const float* X, int64_t ldx,
           const float* panels, float* S, int64_t ld) {
  if (bl.packed) attn_gemm(M, round16(n), D, Q, D, 1, panels, 16, D * 16, S, ld, 1.f, 0.f, nullptr);
  else if (bl.tiles) attn_gemm_nt_rows(M, n, D, Q, D, X, ldx, S, ld);
  else sgemm(false, true, (int)M, (int)n, (int)D, 1.f, Q, (int)D, X, (int)ldx, 0.f, S, (int)ld);
}

// C [M, N] = alpha · A [M, K] · B [K, N] + s_i · C, with A row-major (lda) or, when transA, A = Aᵀ of a row-major
// [K, M] matrix; s_i = row_scale[i] if given, else beta.
void mm_nn(bool fast, bool transA, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, const float* row_scale, float* C, int64_t ldc) {
  if (fast) {
    attn_gemm(M, N, K, A, transA ? 1 : lda, transA ? lda : 1, B, ldb, 16, C, ldc, alpha, beta, row_scale);
    return;
  }
  if (row_scale) {
    for (int64_t i = 0; i < M; i++)
      if (row_scale[i] != 1.f) attn_row_ops().scale(C + i * ldc, N, row_scale[i]);
    beta = 1.f;
  }
  sgemm(transA, false, (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

// ---------------------------------------------------------------------------------------------------------------
// Forward.

// Rows [r0, r0 + M) of (b, kvh) against keys [k_begin, k_end): unnormalised output O [M, Dv], running max m and
// sum l (log2 units).
void fwd_rows(const AttnProblem& p, const Geo& g, const KeyMask& km, const Blocks& bl, int64_t b, int64_t kvh,
              int64_t r0, int64_t M, int64_t k_begin, int64_t k_end, float* O, float* m, float* l) {
  const RowOps& R = attn_row_ops();
  const int64_t D = p.D, Dv = p.Dv, bk = b * p.Hkv + kvh;
  float* Q = grow(tls.q, M * D);
  float* S = grow(tls.s, M * kBK);
  float* al = grow(tls.rl, M);
  const float qs = p.scale * kLog2e;
  for (int64_t rr = 0; rr < M; rr++) R.scale_copy(Q + rr * D, g.row(p.q, b, kvh, r0 + rr), D, qs);
  std::fill(m, m + M, kNegInf);
  std::fill(l, l + M, 0.f);
  std::fill(O, O + M * Dv, 0.f);
  const float* K = p.k.p + b * p.k.sb + kvh * p.k.sh;
  const float* V = p.v.p + b * p.v.sb + kvh * p.v.sh;
  const int64_t pmin = g.pos(r0);
  // With few rows (decode) each key is used a handful of times and the cache comes from memory: ask for this
  // block's values and the next block's keys ahead of use (short runs of rows are more than the hardware
  // prefetcher ramps up to). Panels (many rows) are read from cache and need no help.
  const bool ahead = !bl.packed;
  const auto prefetch_rows = [&](const float* X, int64_t st, int64_t from, int64_t to, int64_t width) {
    for (int64_t j = from; j < to; j++)
      for (int64_t e = 0; e < width; e += 16) __builtin_prefetch(X + j * st + e);
  };
  if (ahead) prefetch_rows(K, p.k.st, k_begin, std::min(k_end, k_begin + kBK), D);
  for (int64_t k0 = k_begin; k0 < k_end; k0 += kBK) {
    const int64_t n = std::min(kBK, k_end - k0);
    if (ahead) {
      prefetch_rows(V, p.v.st, k0, k0 + n, Dv);
      prefetch_rows(K, p.k.st, k0 + n, std::min(k_end, k0 + n + kBK), D);
    }
    const int64_t allowed = km.allowed(b, k0, k0 + n);
    if (allowed == 0) continue;
    const bool cm = p.causal && k0 + n - 1 > pmin;
    const bool mm = allowed < n;
    // On a diagonal block, each group of 6 rows (one register tile high) computes only the key panels it can see.
    const bool by_group = cm && bl.packed;
    if (by_group) {
      for (int64_t g0 = 0; g0 < M; g0 += 6) {
        const int64_t gm = std::min<int64_t>(6, M - g0);
        const int64_t nvis = std::min(n, g.pos(r0 + g0 + gm - 1) - k0 + 1);
        if (nvis > 0)
          attn_gemm(gm, round16(nvis), D, Q + g0 * D, D, 1, bl.kpanels(bk, k0, D), 16, D * 16, S + g0 * kBK, kBK, 1.f,
                    0.f, nullptr);
      }
    } else {
      mm_nt(bl, M, n, D, Q, K + k0 * p.k.st, p.k.st, bl.kpanels(bk, k0, D), S, kBK);
    }
    for (int64_t rr = 0; rr < M; rr++) {
      float* s = S + rr * kBK;
      // keys [0, lim) of the block are causally visible to this row
      const int64_t lim = cm ? std::max<int64_t>(0, std::min(n, g.pos(r0 + rr) - k0 + 1)) : n;
      if (mm) R.add(s, km.bias_at(b, k0), lim);
      const float mnew = std::max(m[rr], lim > 0 ? R.max(s, lim) : kNegInf);
      if (mnew == kNegInf) {  // nothing to attend yet: P = 0, O stays 0
        std::fill(s, s + n, 0.f);
        al[rr] = 1.f;
        continue;
      }
      al[rr] = std::exp2(m[rr] - mnew);
      l[rr] = l[rr] * al[rr] + (lim > 0 ? R.exp2_sum(s, lim, mnew) : 0.f);
      m[rr] = mnew;
      std::fill(s + lim, s + n, 0.f);
    }
    // O = alpha_i O + P V
    if (by_group) {
      for (int64_t g0 = 0; g0 < M; g0 += 6) {
        const int64_t gm = std::min<int64_t>(6, M - g0);
        const int64_t nvis = std::min(n, g.pos(r0 + g0 + gm - 1) - k0 + 1);
        if (nvis > 0)  // (rows that see nothing here have alpha = 1)
          attn_gemm(gm, Dv, nvis, S + g0 * kBK, kBK, 1, V + k0 * p.v.st, p.v.st, 16, O + g0 * Dv, Dv, 1.f, 1.f, al + g0);
      }
      continue;
    }
    mm_nn(bl.tiles, false, M, Dv, n, 1.f, S, kBK, V + k0 * p.v.st, p.v.st, 1.f, al, O, Dv);
  }
}

}  // namespace

void attention_forward(const AttnProblem& p0, float* out, float* lse) {
  const AttnProblem p = sanitized(p0);
  const int64_t B = p.B, Hkv = p.Hkv, Dv = p.Dv;
  if (B * p.Hq * p.Tq == 0) return;
  if (p.Tk == 0) {
    std::fill(out, out + B * p.Hq * p.Tq * Dv, 0.f);
    std::fill(lse, lse + B * p.Hq * p.Tq, kNegInf);
    return;
  }
  const Geo g(p);
  const KeyMask km(p);
  const Blocks bl = make_blocks(p, g.R, false);
  const RowOps& R = attn_row_ops();
  const int64_t nrb = (g.R + kBQ - 1) / kBQ, base = B * Hkv * nrb, nkb = (p.Tk + kBK - 1) / kBK;
  // Few row blocks (one-row decode against a long cache): split the keys into about 8 tasks, a count that 2 and 4
  // threads divide evenly when one is near. Fixed by the problem, not the thread count, so the bits do not change
  // with it.
  int64_t nsplit = 1;
  if (base < 8 && nkb >= 2) {
    nsplit = std::min<int64_t>(nkb, (8 + base - 1) / base);
    for (int64_t s = nsplit; s <= std::min<int64_t>(nkb, 2 * nsplit); s++)
      if ((base * s) % 4 == 0) {
        nsplit = s;
        break;
      }
  }

  auto finish_row = [&](int64_t b, int64_t kvh, int64_t r, const float* o, float m, float l) {
    const int64_t orow = g.out_row(b, kvh, r);
    float* dst = out + orow * Dv;
    if (l == 0.f) {
      std::fill(dst, dst + Dv, 0.f);
      lse[orow] = kNegInf;
    } else {
      R.scale_copy(dst, o, Dv, 1.f / l);
      lse[orow] = (m + std::log2(l)) * kLn2;
    }
  };

  if (nsplit == 1) {
    parallel_tasks(base, [&](int64_t t) {
      const int64_t rb = nrb - 1 - t % nrb, bk = t / nrb, b = bk / Hkv, kvh = bk % Hkv;  // late (heavy) rows first
      const int64_t r0 = rb * kBQ, M = std::min(kBQ, g.R - r0);
      float* O = grow(tls.o, M * Dv);
      float* m = grow(tls.m, M);
      float* l = grow(tls.l, M);
      fwd_rows(p, g, km, bl, b, kvh, r0, M, 0, g.key_end(r0, M), O, m, l);
      for (int64_t rr = 0; rr < M; rr++) finish_row(b, kvh, r0 + rr, O + rr * Dv, m[rr], l[rr]);
    });
    return;
  }

  // Split over keys, then merge the partial results by their log-sum-exp.
  const int64_t rows = B * Hkv * g.R;
  std::vector<float> Op(nsplit * rows * Dv), mp(nsplit * rows), lp(nsplit * rows);
  parallel_tasks(base * nsplit, [&](int64_t t) {
    const int64_t split = t % nsplit, u = t / nsplit;
    const int64_t rb = nrb - 1 - u % nrb, bk = u / nrb, b = bk / Hkv, kvh = bk % Hkv;
    const int64_t r0 = rb * kBQ, M = std::min(kBQ, g.R - r0);
    const int64_t kend = g.key_end(r0, M), nb = (kend + kBK - 1) / kBK;
    const int64_t k_begin = nb * split / nsplit * kBK, k_end = std::min(kend, nb * (split + 1) / nsplit * kBK);
    const int64_t idx = split * rows + bk * g.R + r0;
    fwd_rows(p, g, km, bl, b, kvh, r0, M, k_begin, k_end, Op.data() + idx * Dv, mp.data() + idx, lp.data() + idx);
  });
  parallel_for(rows, 16, [&](int64_t u0, int64_t u1) {
    std::vector<float> o(Dv);
    for (int64_t u = u0; u < u1; u++) {
      float M = kNegInf;
      for (int64_t s = 0; s < nsplit; s++) M = std::max(M, mp[s * rows + u]);
      float L = 0.f;
      std::fill(o.begin(), o.end(), 0.f);
      if (M != kNegInf)
        for (int64_t s = 0; s < nsplit; s++) {
          const float w = std::exp2(mp[s * rows + u] - M);
          if (w == 0.f) continue;
          L += lp[s * rows + u] * w;
          const float* src = Op.data() + (s * rows + u) * Dv;
          for (int64_t e = 0; e < Dv; e++) o[e] += w * src[e];
        }
      const int64_t bk = u / g.R;
      finish_row(bk / Hkv, bk % Hkv, u % g.R, o.data(), M, L);
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Backward.

void attention_backward(const AttnProblem& p0, AttnTensor out, const float* lse, AttnTensor gout, float* gq, float* gk,
                        float* gv) {
  const AttnProblem p = sanitized(p0);
  const int64_t B = p.B, Hkv = p.Hkv, D = p.D, Dv = p.Dv, Tk = p.Tk;
  const int64_t nq = B * p.Hq * p.Tq * D, nk = B * Hkv * Tk * D, nv = B * Hkv * Tk * Dv;
  if (B * p.Hq * p.Tq == 0 || Tk == 0) {
    std::fill(gq, gq + nq, 0.f);
    std::fill(gk, gk + nk, 0.f);
    std::fill(gv, gv + nv, 0.f);
    return;
  }
  if (p.Tq <= 1) out.st = gout.st = Dv;
  const Geo g(p);
  const KeyMask km(p);
  const Blocks bl = make_blocks(p, g.R, true);
  const RowOps& R = attn_row_ops();
  const int64_t rows = B * Hkv * g.R;

  // Per stacked row: lse in log2 units and D_i = rowsum(dO * O).
  std::vector<float> l2(rows), dd(rows);
  parallel_for(rows, 256, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; u++) {
      const int64_t bk = u / g.R, r = u % g.R, b = bk / Hkv, kvh = bk % Hkv;
      l2[u] = lse[g.out_row(b, kvh, r)] * kLog2e;
      dd[u] = R.dot(g.row(gout, b, kvh, r), g.row(out, b, kvh, r), Dv);
    }
  });

  // dQ lanes: key block kb goes to lane snake(kb) (0, 1, .., L-1, L-1, .., 0, 0, 1, ..: under a causal mask each
  // lane gets heavy early blocks and light late ones alike). A task owns one (lane, b, kv head): it zeroes that
  // part of its lane and runs the lane's key blocks in increasing order. Which thread runs it does not matter, so
  // every dQ sum happens in the same order on every run and at every thread count.
  const int64_t nkb = (Tk + kBKb - 1) / kBKb, nbk = B * Hkv;
  const int64_t L = std::min<int64_t>(kDqLanes, nkb);
  std::unique_ptr<float[]> lanes(new float[L * rows * D]);
  auto lane_of = [&](int64_t kb) {
    const int64_t r = kb % (2 * L);
    return r < L ? r : 2 * L - 1 - r;
  };

  const float qs = p.scale * kLog2e;
  // key block kb of (b, kv head) bk; dQ = this lane's rows of bk
  auto task = [&](int64_t kb, int64_t bk, float* dQ) {
    const int64_t b = bk / Hkv, kvh = bk % Hkv;
    const int64_t k0 = kb * kBKb, n = std::min(kBKb, Tk - k0);
    float* dK = gk + (bk * Tk + k0) * D;
    float* dV = gv + (bk * Tk + k0) * Dv;
    std::fill(dK, dK + n * D, 0.f);
    std::fill(dV, dV + n * Dv, 0.f);
    const int64_t allowed = km.allowed(b, k0, k0 + n);
    const int64_t r_start = g.first_row_seeing(k0);
    if (allowed == 0 || r_start >= g.R) return;
    const float* K = p.k.p + b * p.k.sb + kvh * p.k.sh + k0 * p.k.st;
    const float* V = p.v.p + b * p.v.sb + kvh * p.v.sh + k0 * p.v.st;
    const int64_t ldk = p.k.st, ldv = p.v.st, ld = kBKb;
    const float* Kp = bl.kpanels(bk, k0, D);
    const float* Vp = bl.vpanels(bk, k0, Dv);
    float* Q = grow(tls.q, kBQb * D);
    float* GO = grow(tls.go, kBQb * Dv);
    float* S = grow(tls.s, kBQb * kBKb);
    float* dP = grow(tls.dp, kBQb * kBKb);
    for (int64_t r0 = r_start; r0 < g.R; r0 += kBQb) {
      const int64_t M = std::min(kBQb, g.R - r0);
      const float* rl = l2.data() + bk * g.R + r0;
      const float* rd = dd.data() + bk * g.R + r0;
      for (int64_t rr = 0; rr < M; rr++) {
        R.scale_copy(Q + rr * D, g.row(p.q, b, kvh, r0 + rr), D, qs);
        std::memcpy(GO + rr * Dv, g.row(gout, b, kvh, r0 + rr), Dv * sizeof(float));
      }
      const bool cm = p.causal && k0 + n - 1 > g.pos(r0);
      const bool mm = allowed < n;
      // On a diagonal block the products skip what causality hides, per group of 6 rows (or 6 keys).
      const bool by_group = cm && bl.packed;
      auto row_vis = [&](int64_t rr) {  // keys [0, lim) of the block visible to row rr
        return cm ? std::max<int64_t>(0, std::min(n, g.pos(r0 + rr) - k0 + 1)) : n;
      };
      auto group_vis = [&](int64_t g0) { return row_vis(std::min(M, g0 + 6) - 1); };
      auto first_row = [&](int64_t j) {  // first row of the block that sees key k0 + j
        return cm ? std::min(M, std::max<int64_t>(0, g.first_row_seeing(k0 + j) - r0)) : 0;
      };
      if (by_group) {
        for (int64_t g0 = 0; g0 < M; g0 += 6) {
          const int64_t nv = group_vis(g0);
          if (nv > 0) {
            const int64_t gm = std::min<int64_t>(6, M - g0);
            attn_gemm(gm, round16(nv), D, Q + g0 * D, D, 1, Kp, 16, D * 16, S + g0 * ld, ld, 1.f, 0.f, nullptr);
            attn_gemm(gm, round16(nv), Dv, GO + g0 * Dv, Dv, 1, Vp, 16, Dv * 16, dP + g0 * ld, ld, 1.f, 0.f, nullptr);
          }
        }
      } else {
        mm_nt(bl, M, n, D, Q, K, ldk, Kp, S, ld);      // S = Q Kᵀ
        mm_nt(bl, M, n, Dv, GO, V, ldv, Vp, dP, ld);   // dP = dO Vᵀ
      }
      for (int64_t rr = 0; rr < M; rr++) {
        float* s = S + rr * ld;
        float* dp = dP + rr * ld;
        const int64_t lim = rl[rr] == kNegInf ? 0 : row_vis(rr);
        if (lim > 0) {
          if (mm) R.add(s, km.bias_at(b, k0), lim);
          R.exp2_sum(s, lim, rl[rr]);       // P
          R.dsoft(dp, s, lim, rd[rr]);      // dS = P (dP - D)
        }
        std::fill(s + lim, s + n, 0.f);
        std::fill(dp + lim, dp + n, 0.f);
      }
      if (by_group) {
        for (int64_t j0 = 0; j0 < n; j0 += 6) {
          const int64_t gn = std::min<int64_t>(6, n - j0), f = first_row(j0);
          if (f >= M) continue;
          attn_gemm(gn, Dv, M - f, S + f * ld + j0, 1, ld, GO + f * Dv, Dv, 16, dV + j0 * Dv, Dv, 1.f, 1.f, nullptr);
          attn_gemm(gn, D, M - f, dP + f * ld + j0, 1, ld, Q + f * D, D, 16, dK + j0 * D, D, kLn2, 1.f, nullptr);
        }
        for (int64_t g0 = 0; g0 < M; g0 += 6) {
          const int64_t nv = group_vis(g0);
          if (nv > 0)
            attn_gemm(std::min<int64_t>(6, M - g0), D, nv, dP + g0 * ld, ld, 1, K, ldk, 16, dQ + (r0 + g0) * D, D,
                      p.scale, 1.f, nullptr);
        }
        continue;
      }
      mm_nn(bl.tiles, true, n, Dv, M, 1.f, S, ld, GO, Dv, 1.f, nullptr, dV, Dv);               // dV += Pᵀ dO
      mm_nn(bl.tiles, true, n, D, M, kLn2, dP, ld, Q, D, 1.f, nullptr, dK, D);                 // dK += scale dSᵀ q
      mm_nn(bl.tiles, false, M, D, n, p.scale, dP, ld, K, ldk, 1.f, nullptr, dQ + r0 * D, D);  // dQ += scale dS K
    }
  };
  parallel_tasks(L * nbk, [&](int64_t t) {
    const int64_t lane = t % L, bk = t / L;
    float* dQ = lanes.get() + (lane * rows + bk * g.R) * D;
    std::fill(dQ, dQ + g.R * D, 0.f);
    for (int64_t kb = 0; kb < nkb; kb++)
      if (lane_of(kb) == lane) task(kb, bk, dQ);
  });

  // gq = the lanes summed in lane order, un-stacked to [B, Hq, Tq, D].
  parallel_for(rows, 64, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; u++) {
      const int64_t bk = u / g.R;
      float* dst = gq + g.out_row(bk / Hkv, bk % Hkv, u % g.R) * D;
      std::memcpy(dst, lanes.get() + u * D, D * sizeof(float));
      for (int64_t s = 1; s < L; s++) R.acc(dst, lanes.get() + (s * rows + u) * D, D);
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Naive: full scores per (b, h), plain softmax with std::exp (a path independent of the fused kernel's).

void attention_naive(const AttnProblem& p0, float* out) {
  const AttnProblem p = sanitized(p0);
  const int64_t Tq = p.Tq, Tk = p.Tk, D = p.D, Dv = p.Dv, G = p.Hq / p.Hkv;
  const KeyMask km(p);
  const int64_t off = p.q_offset;
  parallel_tasks(p.B * p.Hq, [&](int64_t t) {
    const int64_t b = t / p.Hq, h = t % p.Hq, kvh = h / G;
    std::vector<float> S(Tq * Tk);
    const float* Q = p.q.p + b * p.q.sb + h * p.q.sh;
    const float* K = p.k.p + b * p.k.sb + kvh * p.k.sh;
    const float* V = p.v.p + b * p.v.sb + kvh * p.v.sh;
    if (Tk > 0) sgemm(false, true, (int)Tq, (int)Tk, (int)D, p.scale, Q, (int)p.q.st, K, (int)p.k.st, 0.f, S.data(), (int)Tk);
    for (int64_t i = 0; i < Tq; i++) {
      float* s = S.data() + i * Tk;
      float m = kNegInf;
      for (int64_t j = 0; j < Tk; j++) {
        if ((p.causal && j > off + i) || (km.on && km.bias_at(b, 0)[j] != 0.f)) s[j] = kNegInf;
        m = std::max(m, s[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < Tk; j++) sum += (s[j] = m == kNegInf ? 0.f : std::exp(s[j] - m));
      for (int64_t j = 0; j < Tk; j++) s[j] = sum > 0 ? (float)(s[j] / sum) : 0.f;
    }
    float* O = out + (b * p.Hq + h) * Tq * Dv;
    if (Tk > 0) sgemm(false, false, (int)Tq, (int)Dv, (int)Tk, 1.f, S.data(), (int)Tk, V, (int)p.v.st, 0.f, O, (int)Dv);
    else std::fill(O, O + Tq * Dv, 0.f);
  });
}

}  // namespace vk
