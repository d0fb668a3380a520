// Benchmark-only probes (bench/engine.ts): bandwidth ceilings measured with our own pool.
#include "glue/common.h"
#include "kernels/bench.h"

namespace vk {
namespace {

// memcpyPool(dst, src): copies src's bytes into dst (typed arrays, dst at least as long in bytes).
Napi::Value MemcpyPool(const Napi::CallbackInfo& info) {
  Napi::TypedArray s = info[1].As<Napi::TypedArray>(), d = info[0].As<Napi::TypedArray>();
  if (d.ByteLength() < s.ByteLength()) throw Napi::RangeError::New(info.Env(), "memcpyPool: dst is shorter than src");
  memcpy_pool(data_of(info[0]), data_of(info[1]), (int64_t)s.ByteLength());
  return info.Env().Undefined();
}

// readSum(src: Float32Array) -> number
Napi::Value ReadSum(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), read_sum_pool(cf32(info[0]), (int64_t)length_of(info[0])));
}

void register_bench(Napi::Env env, Napi::Object exports) {
  exports.Set("memcpyPool", Napi::Function::New(env, MemcpyPool));
  exports.Set("readSum", Napi::Function::New(env, ReadSum));
}
VK_REGISTER(register_bench);

}  // namespace
}  // namespace vk
