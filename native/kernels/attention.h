// Fused scaled-dot-product attention (FlashAttention-2 style: blockwise over keys with an online softmax, no
// Tq x Tk matrix) and its backward (P recomputed from the saved log-sum-exp).
#pragma once
#include <cstdint>

namespace vk {

// A [B, H, T, D] f32 view with unit stride on its last axis; strides in elements.
struct AttnTensor {
  const float* p;
  int64_t sb, sh, st;
};

struct AttnProblem {
  int64_t B, Hq, Hkv, Tq, Tk, D, Dv;
  AttnTensor q, k, v;  // q [B,Hq,Tq,D], k [B,Hkv,Tk,D], v [B,Hkv,Tk,Dv]
  float scale;
  bool causal;
  int64_t q_offset;      // absolute position of query row 0 for the causal mask
  int mask_dt;           // DT code of key_mask
  const void* key_mask;  // [B, Tk] contiguous, nonzero = attend; null when absent
};

// out [B,Hq,Tq,Dv] and lse [B,Hq,Tq] contiguous. Rows with no key to attend: zeros, lse = -inf.
void attention_forward(const AttnProblem& p, float* out, float* lse);

// gq [B,Hq,Tq,D], gk [B,Hkv,Tk,D], gv [B,Hkv,Tk,Dv] contiguous (overwritten). out and gout [B,Hq,Tq,Dv] views.
void attention_backward(const AttnProblem& p, AttnTensor out, const float* lse, AttnTensor gout, float* gq, float* gk,
                        float* gv);

// The naive composition for tests: materialises the full score matrix per (b, h) with sgemm, softmax, sgemm.
void attention_naive(const AttnProblem& p, float* out);

}  // namespace vk
