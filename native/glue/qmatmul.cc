#include <stdexcept>
#include <string>

#include "glue/common.h"
#include "glue/nf4_view.h"
#include "kernels/q4.h"
#include "kernels/qmatmul.h"

namespace vk {

// The sections of packed NF4 data (src/engine/quant/nf4.ts nf4Layout), checked against its length.
Nf4View nf4_view(const Napi::Value& bytes, int64_t N, int64_t K, bool dq) {
  const uint8_t* p = static_cast<const uint8_t*>(data_of(bytes));
  if (reinterpret_cast<uintptr_t>(p) % 4 != 0) throw std::runtime_error("packed NF4 data is not 4-byte aligned");
  const int64_t codes = N * K / 2, blocks = N * K / 64, blocks2 = (blocks + 255) / 256;
  Nf4View v{p, nullptr, nullptr, nullptr, 0.f, nullptr};
  int64_t need;
  if (!dq) {
    v.absmax = reinterpret_cast<const float*>(p + codes);
    need = codes + 4 * blocks;
  } else {
    const int64_t a2 = codes + (blocks + 3) / 4 * 4, off = a2 + 4 * blocks2;
    v.qabsmax = p + codes;
    v.absmax2 = reinterpret_cast<const float*>(p + a2);
    need = off + 4 + 4 * 256;
    if ((int64_t)length_of(bytes) >= need) v.offset = *reinterpret_cast<const float*>(p + off);
    v.map = reinterpret_cast<const float*>(p + off + 4);
  }
  if ((int64_t)length_of(bytes) != need) throw std::runtime_error("packed NF4 data does not match [N, K]");
  return v;
}

namespace {

// The weight format argument with its packed bytes checked against [N, K].
WT packed_weight(const Napi::Value& fmt, const Napi::Value& bytes, int64_t N, int64_t K) {
  const WT wt = (WT)iarg(fmt);
  if (!qlinear_supported(wt)) throw std::runtime_error("weight format " + std::to_string((int)wt) + " has no kernel");
  if (K % wt_block_values(wt) != 0) throw std::runtime_error("K is not a multiple of the block size");
  if ((int64_t)length_of(bytes) < N * wt_row_bytes(wt, K)) throw std::runtime_error("packed weight is shorter than [N, K]");
  return wt;
}

// qlinear(format, M, N, K, A, lda, W (Uint8Array), bias|null, C, doubleQuant, int8Acts): C [M, N] contiguous;
// int8Acts lets a few-row product round its activations to 8 bits (kernels/qdot.h).
Napi::Value QLinear(const Napi::CallbackInfo& info) {
  return guarded(info, "qlinear", [&]() -> Napi::Value {
    const int64_t M = i64arg(info[1]), N = i64arg(info[2]), K = i64arg(info[3]);
    const WT wt = packed_weight(info[0], info[6], N, K);
    Nf4View v{};
    if (wt == WT::NF4) v = nf4_view(info[6], N, K, barg(info[9]));
    qlinear(wt, M, N, K, cf32(info[4]), i64arg(info[5]), wt == WT::NF4 ? static_cast<const void*>(&v) : data_of(info[6]),
            is_null(info[7]) ? nullptr : cf32(info[7]), f32(info[8]), N, info.Length() > 10 && barg(info[10]));
    return info.Env().Undefined();
  });
}

// qlinearGradInput(format, M, N, K, G, ldg, W, C, doubleQuant): C [M, K] contiguous.
Napi::Value QLinearGradInput(const Napi::CallbackInfo& info) {
  return guarded(info, "qlinearGradInput", [&]() -> Napi::Value {
    const int64_t M = i64arg(info[1]), N = i64arg(info[2]), K = i64arg(info[3]);
    const WT wt = packed_weight(info[0], info[6], N, K);
    Nf4View v{};
    if (wt == WT::NF4) v = nf4_view(info[6], N, K, barg(info[8]));
    qlinear_grad_input(wt, M, N, K, cf32(info[4]), i64arg(info[5]),
                       wt == WT::NF4 ? static_cast<const void*>(&v) : data_of(info[6]), f32(info[7]), K);
    return info.Env().Undefined();
  });
}

// weightFormats() -> { name: { code, blockValues, blockBytes } }: the enum of core/formats.h, for the test that the
// TypeScript mirror agrees with it.
Napi::Value WeightFormats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  const std::pair<const char*, WT> all[] = {{"f32", WT::F32},   {"bf16", WT::BF16}, {"f16", WT::F16},
                                            {"q8_0", WT::Q8_0}, {"q4_0", WT::Q4_0}, {"nf4", WT::NF4}};
  for (const auto& [name, wt] : all) {
    Napi::Object f = Napi::Object::New(env);
    f.Set("code", Napi::Number::New(env, (int)wt));
    f.Set("blockValues", Napi::Number::New(env, (double)wt_block_values(wt)));
    f.Set("blockBytes", Napi::Number::New(env, (double)wt_block_bytes(wt)));
    f.Set("kernels", Napi::Boolean::New(env, !wt_is_block(wt) || qlinear_supported(wt)));
    o.Set(name, f);
  }
  return o;
}

void register_qmatmul(Napi::Env env, Napi::Object exports) {
  exports.Set("qlinear", Napi::Function::New(env, QLinear));
  exports.Set("qlinearGradInput", Napi::Function::New(env, QLinearGradInput));
  exports.Set("weightFormats", Napi::Function::New(env, WeightFormats));
}
VK_REGISTER(register_qmatmul);

}  // namespace
}  // namespace vk
