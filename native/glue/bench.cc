// Benchmark-only probes (bench/ceilings.ts): the machine's limits, measured with our own pool.
#include <string>
#include <vector>

#include "glue/common.h"
#include "kernels/bench.h"

#ifndef VLMKIT_ACCELERATE
extern "C" char* openblas_get_corename(void);
#endif

namespace vk {
namespace {

// fmaPeak(seconds) -> { gflops, isa, threads }: f32 FMA throughput of the widest vector unit, all pool threads.
Napi::Value FmaPeakJs(const Napi::CallbackInfo& info) {
  return guarded(info, "fmaPeak", [&]() -> Napi::Value {
    const double s = farg(info[0]);
    if (!(s > 0 && s <= 10)) throw std::runtime_error("seconds must be in (0, 10]");
    const FmaPeak p = fma_peak_pool(s);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("gflops", Napi::Number::New(info.Env(), p.gflops));
    o.Set("isa", Napi::String::New(info.Env(), p.isa));
    o.Set("threads", Napi::Number::New(info.Env(), p.threads));
    return o;
  });
}

// streamProbe(srcs: Float32Array[], dst: Float32Array | null, nontemporal: boolean) -> checksum.
// dst = Σ srcs (0 to 3 sources, all as long as dst); dst null: one source, read only.
Napi::Value StreamProbe(const Napi::CallbackInfo& info) {
  return guarded(info, "streamProbe", [&]() -> Napi::Value {
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<const float*> srcs;
    const bool write = !is_null(info[1]);
    int64_t n = write ? (int64_t)length_of(info[1]) : -1;
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value v = a.Get(i);
      const int64_t len = (int64_t)length_of(v);
      if (n < 0) n = len;
      if (len != n) throw std::runtime_error("every source must be as long as dst (and as each other)");
      srcs.push_back(cf32(v));
    }
    if (n < 0) throw std::runtime_error("a read-only probe needs one source");
    return Napi::Number::New(info.Env(), stream_probe_pool(srcs.data(), (int)srcs.size(), write ? f32(info[1]) : nullptr, n, barg(info[2])));
  });
}

// blasCore() -> the kernels the BLAS library picked for this CPU (OpenBLAS's core name, e.g. "Haswell").
Napi::Value BlasCore(const Napi::CallbackInfo& info) {
#ifndef VLMKIT_ACCELERATE
  const char* c = openblas_get_corename();
  return Napi::String::New(info.Env(), c ? c : "unknown");
#else
  return Napi::String::New(info.Env(), "Accelerate");
#endif
}

void register_bench(Napi::Env env, Napi::Object exports) {
  exports.Set("fmaPeak", Napi::Function::New(env, FmaPeakJs));
  exports.Set("streamProbe", Napi::Function::New(env, StreamProbe));
  exports.Set("blasCore", Napi::Function::New(env, BlasCore));
}
VK_REGISTER(register_bench);

}  // namespace
}  // namespace vk
