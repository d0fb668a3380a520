// One decode step through a Llama text stack; see decode.h. Each step below names the op of the op-by-op path
// (src/models/idefics3/text.ts, LlamaText.layer) whose kernel call it repeats.
#include "kernels/decode.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/pool.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/fused.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/qdot.h"

namespace vk {
namespace {

inline int64_t wt_size(WT t) { return t == WT::F32 ? 4 : 2; }

// The buffers of one step, reused from call to call on the calling thread.
struct Buffers {
  std::vector<float> x, h, q, k, v, qr, attn, lse, o, act, m, rstd;
};

}  // namespace

void llama_decode_step(const LlamaDecode& p, const float* x_in, float* y) {
  const int64_t B = p.B, H = p.H, D = p.D, qd = p.Hq * D, kvd = p.Hkv * D, I = p.I;
  if (B <= 0 || H <= 0 || D <= 0 || I <= 0 || p.Hkv <= 0 || p.Hq % p.Hkv != 0 || p.past < 0 || p.past >= p.L)
    throw std::runtime_error("llama_decode_step: inconsistent dimensions");
  const bool quant = p.wt == WT::Q8_0 || p.wt == WT::Q4_0 || p.wt == WT::NF4;
  if (p.wt != WT::F32 && p.wt != WT::BF16 && p.wt != WT::F16 && !quant)
    throw std::runtime_error("llama_decode_step: weights must be f32, bf16, f16, q8_0, q4_0 or nf4");
  if (quant) {
    const int64_t bv = wt_block_values(p.wt);
    if (B > kQdotMaxRows || H % bv != 0 || qd % bv != 0 || I % bv != 0)
      throw std::runtime_error("llama_decode_step: quantized weights need at most 8 rows and sizes in whole blocks");
  }
  thread_local Buffers b;
  auto fit = [](std::vector<float>& v, int64_t n) { if ((int64_t)v.size() < n) v.resize((size_t)n); return v.data(); };
  float* x = fit(b.x, B * H);
  float* h = fit(b.h, B * H);
  float* q = fit(b.q, B * qd);
  float* k = fit(b.k, B * kvd);
  float* v = fit(b.v, B * kvd);
  float* qr = fit(b.qr, B * qd);
  float* attn = fit(b.attn, B * qd);
  float* lse = fit(b.lse, B * p.Hq);
  float* o = fit(b.o, B * H);
  float* act = fit(b.act, B * I);
  float* m = fit(b.m, B * H);
  float* rstd = fit(b.rstd, B);
  std::memcpy(x, x_in, (size_t)(B * H) * sizeof(float));
  const int64_t Tk = p.past + 1;
  const int64_t csb = p.Hkv * p.L * D, csh = p.L * D;  // cache strides [B, Hkv, L, D]
  const int64_t wb = wt_size(p.wt);

  for (int li = 0; li < p.nlayers; li++) {
    const LlamaDecodeLayer& l = p.layers[li];
    // warmCaches: idle workers read the next layer's weights meanwhile (a hint; never changes a result)
    if (p.warm && !quant && li + 1 < p.nlayers) {
      const LlamaDecodeLayer& n = p.layers[li + 1];
      const void* ptrs[7] = {n.wq, n.wk, n.wv, n.wo, n.wg, n.wu, n.wd};
      const int64_t bytes[7] = {qd * H * wb, kvd * H * wb, kvd * H * wb, H * qd * wb, I * H * wb, I * H * wb, H * I * wb};
      warm_caches(ptrs, bytes, 7);
    } else if (p.warm && !quant && p.head) {
      warm_caches(&p.head, &p.head_bytes, 1);
    }
    // rmsNorm(x, inputNorm)
    rms_norm_forward(B, H, x, l.in_norm, p.eps, h, rstd);
    // linears(h, [q, k, v])
    {
      const void* w[3] = {l.wq, l.wk, l.wv};
      const int64_t n[3] = {qd, kvd, kvd};
      float* out[3] = {q, k, v};
      if (quant) qdot_linears(p.wt, B, H, h, H, 3, w, n, out);
      else fused_linears(B, H, h, H, p.wt, 3, w, n, out);
    }
    // ropeAppendKV on the [B, 1, heads, D] projections seen as [B, heads, 1, D]
    fused_rope_append_kv(B, 1, p.Hq, p.Hkv, D, View4{q, qd, D, qd}, View4{k, kvd, D, kvd}, View4{v, kvd, D, kvd},
                         p.positions, p.pos64, p.inv_freq, qr, View4{l.k_cache, csb, csh, D},
                         View4{l.v_cache, csb, csh, D}, p.past);
    // attention over cached positions [0, past] (causal, key mask, query at position past)
    {
      AttnProblem a;
      a.B = B, a.Hq = p.Hq, a.Hkv = p.Hkv, a.Tq = 1, a.Tk = Tk, a.D = D, a.Dv = D;
      a.q = AttnTensor{qr, qd, D, D};
      a.k = AttnTensor{l.k_cache, csb, csh, D};
      a.v = AttnTensor{l.v_cache, csb, csh, D};
      a.scale = p.scale;
      a.causal = true;
      a.q_offset = p.past;
      a.mask_dt = p.mask_dt;
      a.key_mask = p.key_mask;
      attention_forward(a, attn, lse);
    }
    // linear(attn, o), then addRmsNorm(x, ·, postNorm): x holds the sum, h the normed input of the MLP
    if (quant) qdot_linear(p.wt, B, H, qd, attn, qd, l.wo, nullptr, o, H);
    else gemm(false, true, B, H, qd, attn, qd, l.wo, p.wt, qd, nullptr, o, H);
    fused_add_rms_norm(B, H, x, o, l.post_norm, p.eps, x, h);
    // swiglu(h, gate, up), linear(act, down), add
    if (quant) {
      qdot_swiglu(p.wt, B, H, h, H, l.wg, l.wu, I, act);
      qdot_linear(p.wt, B, H, I, act, I, l.wd, nullptr, m, H);
    } else {
      fused_swiglu(B, H, h, H, p.wt, l.wg, l.wu, I, act);
      gemm(false, true, B, H, I, act, I, l.wd, p.wt, I, nullptr, m, H);
    }
    binary_flat_f32(BinaryOp::Add, B * H, x, 1, m, 1, x);
  }
  // rmsNorm(x, norm)
  rms_norm_forward(B, H, x, p.final_norm, p.eps, y, rstd);
}

}  // namespace vk
