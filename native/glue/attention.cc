#include "glue/common.h"
#include "kernels/attention.h"

namespace vk {
namespace {

// A [B,H,T,D] view: (data positioned at the view's element 0, [sb, sh, st]).
AttnTensor view_of(const Napi::Value& data, const Napi::Value& strides) {
  auto s = ints(strides);
  if (s.size() != 3) throw std::runtime_error("expected 3 strides");
  return AttnTensor{cf32(data), s[0], s[1], s[2]};
}

// dims = [B, Hq, Hkv, Tq, Tk, D, Dv]; opts: scale, causal, qOffset, maskDT, mask|null
AttnProblem problem_of(const Napi::CallbackInfo& info) {
  auto d = ints(info[0]);
  if (d.size() != 7) throw std::runtime_error("expected 7 dims");
  AttnProblem p;
  p.B = d[0], p.Hq = d[1], p.Hkv = d[2], p.Tq = d[3], p.Tk = d[4], p.D = d[5], p.Dv = d[6];
  p.q = view_of(info[1], info[2]);
  p.k = view_of(info[3], info[4]);
  p.v = view_of(info[5], info[6]);
  p.scale = (float)farg(info[7]);
  p.causal = barg(info[8]);
  p.q_offset = i64arg(info[9]);
  p.mask_dt = iarg(info[10]);
  p.key_mask = is_null(info[11]) ? nullptr : data_of(info[11]);
  if (p.Hkv <= 0 || p.Hq % p.Hkv != 0) throw std::runtime_error("Hq must be a multiple of Hkv");
  return p;
}

// attentionForward(dims, q, qs, k, ks, v, vs, scale, causal, qOffset, maskDT, mask, out, lse)
Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  return guarded(info, "attentionForward", [&]() -> Napi::Value {
    attention_forward(problem_of(info), f32(info[12]), f32(info[13]));
    return info.Env().Undefined();
  });
}

// attentionBackward(dims, q, qs, k, ks, v, vs, scale, causal, qOffset, maskDT, mask, out, outs, lse, gout, gouts,
//                   gq, gk, gv)
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  return guarded(info, "attentionBackward", [&]() -> Napi::Value {
    attention_backward(problem_of(info), view_of(info[12], info[13]), cf32(info[14]), view_of(info[15], info[16]),
                       f32(info[17]), f32(info[18]), f32(info[19]));
    return info.Env().Undefined();
  });
}

// attentionNaive(dims, q, qs, k, ks, v, vs, scale, causal, qOffset, maskDT, mask, out): for tests
Napi::Value AttentionNaive(const Napi::CallbackInfo& info) {
  return guarded(info, "attentionNaive", [&]() -> Napi::Value {
    attention_naive(problem_of(info), f32(info[12]));
    return info.Env().Undefined();
  });
}

void register_attention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionForward", Napi::Function::New(env, AttentionForward));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward));
  exports.Set("attentionNaive", Napi::Function::New(env, AttentionNaive));
}
VK_REGISTER(register_attention);

}  // namespace
}  // namespace vk
