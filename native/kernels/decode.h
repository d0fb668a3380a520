// One cached decode step through a whole Llama text stack in one call: for every layer RMSNorm, the q/k/v
// projections, RoPE and the KV-cache append, decode attention, the output projection with the residual add and
// the post-attention norm, the SwiGLU MLP and its residual, then the final norm. It calls the same kernels, in the
// same order, with the same operands as the op-by-op path of src/models/idefics3/text.ts, so its result equals
// that path's bit for bit; what it saves is the JavaScript between the ops (some 300 addon calls, tensors and
// views per token) and the pool going cold meanwhile: its parallel products follow each other within
// microseconds, so the workers never leave their spin between them.
// Block-quantized weights (Q8_0, Q4_0, NF4) take the 8-bit-activation kernels of kernels/qdot.h, the ones the
// op-by-op path takes at inference for up to 8 rows, with q/k/v and gate/up fused as qdot_linears / qdot_swiglu.
#pragma once
#include <cstdint>

#include "core/formats.h"

namespace vk {

struct LlamaDecodeLayer {
  const float* in_norm;    // [H]
  const void* wq;          // [Hq*D, H]
  const void* wk;          // [Hkv*D, H]
  const void* wv;          // [Hkv*D, H]
  const void* wo;          // [H, Hq*D]
  const float* post_norm;  // [H]
  const void* wg;          // [I, H]
  const void* wu;          // [I, H]
  const void* wd;          // [H, I]
  float* k_cache;          // [B, Hkv, L, D] contiguous
  float* v_cache;          // [B, Hkv, L, D] contiguous
};

struct LlamaDecode {
  int64_t B, H, Hq, Hkv, D, I;
  int64_t past;  // positions cached so far (this step's keys go to position `past`)
  int64_t L;     // the caches' length (past < L)
  // every linear's weight type: f32, bf16 or f16; or Q8_0, Q4_0, NF4 (then each weight pointer points at the
  // packed rows, or at an Nf4View for NF4, and the products are the 8-bit-activation ones of kernels/qdot.h, as
  // the op-by-op path takes them at inference; B <= kQdotMaxRows; no cache warming)
  WT wt;
  int nlayers;
  const LlamaDecodeLayer* layers;
  const void* positions;  // [B] rotary positions of this step, i32 (or i64 when pos64)
  bool pos64;
  const float* inv_freq;  // [D/2]
  int mask_dt;            // DT code of key_mask
  const void* key_mask;   // [B, past + 1], nonzero = attend; null = every key attends
  float eps, scale;
  const float* final_norm;  // [H]
  // Idle-time cache warming as the op-by-op path asks for it: the next layer's weights during each layer, the
  // lm_head (`head_bytes` from `head`, null for none) during the last. Only for buffers the addon frees through
  // warm_forget (the queue outlives the call).
  bool warm;
  const void* head;
  int64_t head_bytes;
};

// y [B, H] = the final-normed hidden state of input embeddings x [B, H] (x is left as it is); writes this step's
// keys and values into every layer's caches at position p.past.
void llama_decode_step(const LlamaDecode& p, const float* x, float* y);

}  // namespace vk
