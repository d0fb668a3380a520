// N-API glue for the reduction kernels (see kernels/reduce.h).
#include "glue/common.h"
#include "kernels/reduce.h"

namespace vk {
namespace {

// reduce(op, outer, n, inner, x, out): out is a Float32Array, or an Int32Array for argmax
Napi::Value Reduce(const Napi::CallbackInfo& info) {
  return guarded(info, "reduce", [&]() -> Napi::Value {
    reduce_f32((ReduceOp)iarg(info[0]), i64arg(info[1]), i64arg(info[2]), i64arg(info[3]), cf32(info[4]),
               data_of(info[5]));
    return info.Env().Undefined();
  });
}

void register_reduce(Napi::Env env, Napi::Object exports) { exports.Set("reduce", Napi::Function::New(env, Reduce)); }
VK_REGISTER(register_reduce);

}  // namespace
}  // namespace vk
