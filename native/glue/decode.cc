#include <stdexcept>
#include <string>
#include <vector>

#include "glue/common.h"
#include "kernels/decode.h"

namespace vk {
namespace {

// The data of a typed array holding at least `bytes` bytes (a short one would be read past its end).
void* sized(const Napi::Value& v, int64_t bytes, const char* what) {
  Napi::TypedArray t = v.As<Napi::TypedArray>();
  if ((int64_t)t.ByteLength() < bytes) throw std::runtime_error(std::string(what) + " is shorter than its shape needs");
  return data_of(v);
}

// llamaDecode([B, H, Hq, Hkv, D, I, past, L], wType, layers, positions, pos64, invFreq, maskDT, mask|null, eps,
//             scale, finalNorm, x, y, warm, head|null)
// layers: one array per layer of [inNorm, q, k, v, o, postNorm, gate, up, down, kCache, vCache].
Napi::Value LlamaDecodeStep(const Napi::CallbackInfo& info) {
  return guarded(info, "llamaDecode", [&]() -> Napi::Value {
    auto d = ints(info[0]);
    if (d.size() != 8) throw std::runtime_error("expected dims [B, H, Hq, Hkv, D, I, past, L]");
    LlamaDecode p;
    p.B = d[0], p.H = d[1], p.Hq = d[2], p.Hkv = d[3], p.D = d[4], p.I = d[5], p.past = d[6], p.L = d[7];
    for (int64_t v : d)
      if (v < 0) throw std::runtime_error("negative dimension");
    p.wt = (WT)iarg(info[1]);
    if (p.wt != WT::F32 && p.wt != WT::BF16 && p.wt != WT::F16) throw std::runtime_error("weights must be f32, bf16 or f16");
    const int64_t wb = p.wt == WT::F32 ? 4 : 2, fb = 4;
    const int64_t H = p.H, qd = p.Hq * p.D, kvd = p.Hkv * p.D, I = p.I, cache = p.B * p.Hkv * p.L * p.D * fb;
    Napi::Array la = info[2].As<Napi::Array>();
    std::vector<LlamaDecodeLayer> layers(la.Length());
    for (uint32_t i = 0; i < la.Length(); i++) {
      Napi::Array a = la.Get(i).As<Napi::Array>();
      if (a.Length() != 11) throw std::runtime_error("a layer needs 11 arrays");
      LlamaDecodeLayer& l = layers[i];
      l.in_norm = static_cast<const float*>(sized(a.Get(0u), H * fb, "input norm"));
      l.wq = sized(a.Get(1u), qd * H * wb, "q weight");
      l.wk = sized(a.Get(2u), kvd * H * wb, "k weight");
      l.wv = sized(a.Get(3u), kvd * H * wb, "v weight");
      l.wo = sized(a.Get(4u), H * qd * wb, "o weight");
      l.post_norm = static_cast<const float*>(sized(a.Get(5u), H * fb, "post-attention norm"));
      l.wg = sized(a.Get(6u), I * H * wb, "gate weight");
      l.wu = sized(a.Get(7u), I * H * wb, "up weight");
      l.wd = sized(a.Get(8u), H * I * wb, "down weight");
      l.k_cache = static_cast<float*>(sized(a.Get(9u), cache, "key cache"));
      l.v_cache = static_cast<float*>(sized(a.Get(10u), cache, "value cache"));
    }
    p.nlayers = (int)layers.size();
    p.layers = layers.data();
    p.pos64 = barg(info[4]);
    p.positions = sized(info[3], p.B * (p.pos64 ? 8 : 4), "positions");
    p.inv_freq = static_cast<const float*>(sized(info[5], p.D / 2 * fb, "inverse frequencies"));
    p.mask_dt = iarg(info[6]);
    static const int64_t dt_bytes[] = {4, 8, 2, 2, 4, 8, 1};  // by DT code (kernels/layout.h)
    if (p.mask_dt < 0 || p.mask_dt > 6) throw std::runtime_error("unknown key mask dtype");
    p.key_mask = is_null(info[7]) ? nullptr : sized(info[7], p.B * (p.past + 1) * dt_bytes[p.mask_dt], "key mask");
    p.eps = (float)farg(info[8]);
    p.scale = (float)farg(info[9]);
    p.final_norm = static_cast<const float*>(sized(info[10], H * fb, "final norm"));
    const float* x = static_cast<const float*>(sized(info[11], p.B * H * fb, "input"));
    float* y = static_cast<float*>(sized(info[12], p.B * H * fb, "output"));
    p.warm = barg(info[13]);
    p.head = is_null(info[14]) ? nullptr : data_of(info[14]);
    p.head_bytes = p.head ? (int64_t)info[14].As<Napi::TypedArray>().ByteLength() : 0;
    llama_decode_step(p, x, y);
    return info.Env().Undefined();
  });
}

void register_decode(Napi::Env env, Napi::Object exports) {
  exports.Set("llamaDecode", Napi::Function::New(env, LlamaDecodeStep));
}
VK_REGISTER(register_decode);

}  // namespace
}  // namespace vk
