// N-API glue for the optimizer kernels (see kernels/optim.h). The scalars are computed in f64 on the JS side.
#include "glue/common.h"
#include "kernels/optim.h"

namespace vk {
namespace {

// adamw(n, p, g, m, v, decay, oneMinusB1, b2, oneMinusB2, bc2Sqrt, eps, stepSize)
Napi::Value AdamW(const Napi::CallbackInfo& info) {
  return guarded(info, "adamw", [&]() -> Napi::Value {
    AdamWScalars s{(float)farg(info[5]), (float)farg(info[6]), (float)farg(info[7]), (float)farg(info[8]),
                   (float)farg(info[9]), (float)farg(info[10]), (float)farg(info[11])};
    adamw_f32(i64arg(info[0]), f32(info[1]), cf32(info[2]), f32(info[3]), f32(info[4]), s);
    return info.Env().Undefined();
  });
}

void register_optim(Napi::Env env, Napi::Object exports) { exports.Set("adamw", Napi::Function::New(env, AdamW)); }
VK_REGISTER(register_optim);

}  // namespace
}  // namespace vk
