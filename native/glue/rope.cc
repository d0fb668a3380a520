#include "glue/common.h"
#include "kernels/rope.h"

namespace vk {
namespace {

// rope(dims [B,H,T,D], x, xStrides [sb,sh,st], positions, pos64, invFreq, inverse, out)
Napi::Value Rope(const Napi::CallbackInfo& info) {
  return guarded(info, "rope", [&]() -> Napi::Value {
    auto d = ints(info[0]);
    auto s = ints(info[2]);
    if (d.size() != 4 || s.size() != 3) throw std::runtime_error("expected 4 dims and 3 strides");
    rope(d[0], d[1], d[2], d[3], cf32(info[1]), s[0], s[1], s[2], data_of(info[3]), barg(info[4]), cf32(info[5]),
         barg(info[6]), f32(info[7]));
    return info.Env().Undefined();
  });
}

void register_rope(Napi::Env env, Napi::Object exports) { exports.Set("rope", Napi::Function::New(env, Rope)); }
VK_REGISTER(register_rope);

}  // namespace
}  // namespace vk
