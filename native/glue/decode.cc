#include <stdexcept>
#include <string>
#include <vector>

#include "glue/common.h"
#include "glue/nf4_view.h"
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
//             scale, finalNorm, x, y, warm, head|null, doubleQuant?)
// layers: one array per layer of [inNorm, q, k, v, o, postNorm, gate, up, down, kCache, vCache]. wType may be a
// block format (Q8_0, Q4_0, NF4): each weight is then its packed bytes (Uint8Array), NF4 double-quantized when
// doubleQuant is true.
Napi::Value LlamaDecodeStep(const Napi::CallbackInfo& info) {
  return guarded(info, "llamaDecode", [&]() -> Napi::Value {
    auto d = ints(info[0]);
    if (d.size() != 8) throw std::runtime_error("expected dims [B, H, Hq, Hkv, D, I, past, L]");
    LlamaDecode p;
    p.B = d[0], p.H = d[1], p.Hq = d[2], p.Hkv = d[3], p.D = d[4], p.I = d[5], p.past = d[6], p.L = d[7];
    for (int64_t v : d)
      if (v < 0) throw std::runtime_error("negative dimension");
    p.wt = (WT)iarg(info[1]);
    const bool quant = p.wt == WT::Q8_0 || p.wt == WT::Q4_0 || p.wt == WT::NF4;
    if (p.wt != WT::F32 && p.wt != WT::BF16 && p.wt != WT::F16 && !quant)
      throw std::runtime_error("weights must be f32, bf16, f16, q8_0, q4_0 or nf4");
    const bool dq = info.Length() > 15 && barg(info[15]);
    const int64_t fb = 4;
    const int64_t H = p.H, qd = p.Hq * p.D, kvd = p.Hkv * p.D, I = p.I, cache = p.B * p.Hkv * p.L * p.D * fb;
    if (quant && (H % wt_block_values(p.wt) != 0 || qd % wt_block_values(p.wt) != 0 || I % wt_block_values(p.wt) != 0))
      throw std::runtime_error("quantized weights need input sizes in whole blocks");
    Napi::Array la = info[2].As<Napi::Array>();
    std::vector<LlamaDecodeLayer> layers(la.Length());
    // NF4: the views the layers' weight pointers point at (7 per layer), alive until the step returns
    std::vector<Nf4View> views(p.wt == WT::NF4 ? 7 * (size_t)la.Length() : 0);
    // a weight [N, K]: its data checked against the format's size (packed rows, or NF4's sections)
    auto weight = [&](const Napi::Value& v, int64_t N, int64_t K, const char* what, size_t slot) -> const void* {
      if (p.wt == WT::NF4) return &(views[slot] = nf4_view(v, N, K, dq));
      const int64_t bytes = quant ? N * wt_row_bytes(p.wt, K) : N * K * (p.wt == WT::F32 ? 4 : 2);
      return sized(v, bytes, what);
    };
    for (uint32_t i = 0; i < la.Length(); i++) {
      Napi::Array a = la.Get(i).As<Napi::Array>();
      if (a.Length() != 11) throw std::runtime_error("a layer needs 11 arrays");
      LlamaDecodeLayer& l = layers[i];
      l.in_norm = static_cast<const float*>(sized(a.Get(0u), H * fb, "input norm"));
      const size_t s = 7 * (size_t)i;
      l.wq = weight(a.Get(1u), qd, H, "q weight", s);
      l.wk = weight(a.Get(2u), kvd, H, "k weight", s + 1);
      l.wv = weight(a.Get(3u), kvd, H, "v weight", s + 2);
      l.wo = weight(a.Get(4u), H, qd, "o weight", s + 3);
      l.post_norm = static_cast<const float*>(sized(a.Get(5u), H * fb, "post-attention norm"));
      l.wg = weight(a.Get(6u), I, H, "gate weight", s + 4);
      l.wu = weight(a.Get(7u), I, H, "up weight", s + 5);
      l.wd = weight(a.Get(8u), H, I, "down weight", s + 6);
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
    p.warm = barg(info[13]) && !quant;
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
