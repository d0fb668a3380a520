#include "glue/common.h"
#include "kernels/layout.h"

namespace vk {
namespace {

// copyStrided(elemBytes, shape[], src, srcStrides[], dst, dstStrides[]) — src/dst typed arrays positioned at
// element 0 of each view (the TS side passes subarrays from the view offset).
Napi::Value CopyStrided(const Napi::CallbackInfo& info) {
  return guarded(info, "copyStrided", [&]() -> Napi::Value {
    int elem = iarg(info[0]);
    auto shape = ints(info[1]);
    auto ss = ints(info[3]);
    auto ds = ints(info[5]);
    if (shape.size() > 8) throw std::runtime_error("more than 8 dimensions");
    copy_strided(elem, (int)shape.size(), shape.data(), data_of(info[2]), ss.data(), data_of(info[4]), ds.data());
    return info.Env().Undefined();
  });
}

// convert(fromDT, toDT, n, src, dst)
Napi::Value Convert(const Napi::CallbackInfo& info) {
  convert((DT)iarg(info[0]), (DT)iarg(info[1]), i64arg(info[2]), data_of(info[3]), data_of(info[4]));
  return info.Env().Undefined();
}

// fill(dt, n, dst, value)
Napi::Value Fill(const Napi::CallbackInfo& info) {
  fill((DT)iarg(info[0]), i64arg(info[1]), data_of(info[2]), farg(info[3]));
  return info.Env().Undefined();
}

void register_layout(Napi::Env env, Napi::Object exports) {
  exports.Set("copyStrided", Napi::Function::New(env, CopyStrided));
  exports.Set("convert", Napi::Function::New(env, Convert));
  exports.Set("fill", Napi::Function::New(env, Fill));
}
VK_REGISTER(register_layout);

}  // namespace
}  // namespace vk
