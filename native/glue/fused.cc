#include <stdexcept>
#include <vector>

#include "glue/common.h"
#include "kernels/fused.h"

namespace vk {
namespace {

WT weight_type(const Napi::Value& v) {
  const WT t = (WT)iarg(v);
  if (t != WT::F32 && t != WT::BF16 && t != WT::F16) throw std::runtime_error("weights must be f32, bf16 or f16");
  return t;
}

View4 view4(const Napi::Value& p, const Napi::Value& strides) {
  auto s = ints(strides);
  if (s.size() != 3) throw std::runtime_error("expected 3 strides");
  return View4{f32(p), s[0], s[1], s[2]};
}

// fusedLinears(M, K, x, ldx, wType, [w...], [n...], [y...])
Napi::Value FusedLinears(const Napi::CallbackInfo& info) {
  return guarded(info, "fusedLinears", [&]() -> Napi::Value {
    const WT wt = weight_type(info[4]);
    Napi::Array wa = info[5].As<Napi::Array>(), na = info[6].As<Napi::Array>(), ya = info[7].As<Napi::Array>();
    const uint32_t count = wa.Length();
    if (na.Length() != count || ya.Length() != count) throw std::runtime_error("weights, widths and outputs differ in count");
    std::vector<const void*> w(count);
    std::vector<int64_t> n(count);
    std::vector<float*> y(count);
    for (uint32_t i = 0; i < count; i++) {
      w[i] = data_of(wa.Get(i));
      n[i] = na.Get(i).As<Napi::Number>().Int64Value();
      y[i] = f32(ya.Get(i));
    }
    fused_linears(i64arg(info[0]), i64arg(info[1]), cf32(info[2]), i64arg(info[3]), wt, (int)count, w.data(), n.data(),
                  y.data());
    return info.Env().Undefined();
  });
}

// fusedSwiglu(M, K, x, ldx, wType, wGate, wUp, N, y)
Napi::Value FusedSwiglu(const Napi::CallbackInfo& info) {
  return guarded(info, "fusedSwiglu", [&]() -> Napi::Value {
    fused_swiglu(i64arg(info[0]), i64arg(info[1]), cf32(info[2]), i64arg(info[3]), weight_type(info[4]),
                 data_of(info[5]), data_of(info[6]), i64arg(info[7]), f32(info[8]));
    return info.Env().Undefined();
  });
}

// fusedAddRmsNorm(R, D, x, r, w|null, eps, s, y)
Napi::Value FusedAddRmsNorm(const Napi::CallbackInfo& info) {
  return guarded(info, "fusedAddRmsNorm", [&]() -> Napi::Value {
    fused_add_rms_norm(i64arg(info[0]), i64arg(info[1]), cf32(info[2]), cf32(info[3]),
                       is_null(info[4]) ? nullptr : cf32(info[4]), (float)farg(info[5]), f32(info[6]), f32(info[7]));
    return info.Env().Undefined();
  });
}

// fusedRopeAppendKV([B, T, Hq, Hkv, D], q, qStrides, k, kStrides, v, vStrides, positions, pos64, invFreq, qOut,
//                   kCache, kcStrides, vCache, vcStrides, at)
Napi::Value FusedRopeAppendKV(const Napi::CallbackInfo& info) {
  return guarded(info, "fusedRopeAppendKV", [&]() -> Napi::Value {
    auto d = ints(info[0]);
    if (d.size() != 5) throw std::runtime_error("expected dims [B, T, Hq, Hkv, D]");
    fused_rope_append_kv(d[0], d[1], d[2], d[3], d[4], view4(info[1], info[2]), view4(info[3], info[4]),
                         view4(info[5], info[6]), data_of(info[7]), barg(info[8]), cf32(info[9]), f32(info[10]),
                         view4(info[11], info[12]), view4(info[13], info[14]), i64arg(info[15]));
    return info.Env().Undefined();
  });
}

void register_fused(Napi::Env env, Napi::Object exports) {
  exports.Set("fusedLinears", Napi::Function::New(env, FusedLinears));
  exports.Set("fusedSwiglu", Napi::Function::New(env, FusedSwiglu));
  exports.Set("fusedAddRmsNorm", Napi::Function::New(env, FusedAddRmsNorm));
  exports.Set("fusedRopeAppendKV", Napi::Function::New(env, FusedRopeAppendKV));
}
VK_REGISTER(register_fused);

}  // namespace
}  // namespace vk
