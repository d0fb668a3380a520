// The CPU's features and the instruction-set level the kernels use (core/cpu.h). An invalid VLMKIT_ISA fails the
// addon's load with its one-line message, before any kernel runs.
#include "core/cpu.h"
#include "glue/common.h"

namespace vk {
namespace {

Napi::Value CpuFeaturesOf(const Napi::CallbackInfo& info) {
  const CpuFeatures& f = cpu_features();
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("avx2", Napi::Boolean::New(env, f.avx2));
  o.Set("f16c", Napi::Boolean::New(env, f.f16c));
  o.Set("avx512", Napi::Boolean::New(env, f.avx512));
  o.Set("avx512bf16", Napi::Boolean::New(env, f.avx512bf16));
  o.Set("avx512vnni", Napi::Boolean::New(env, f.avx512vnni));
  o.Set("wide512", Napi::Boolean::New(env, f.wide512));
  o.Set("widest", Napi::String::New(env, isa_name(cpu_isa())));
  o.Set("default", Napi::String::New(env, isa_name(default_isa())));
  return o;
}

// isa() -> the level the kernels use now: 'avx512', 'avx2' or 'scalar'.
Napi::Value IsaNow(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), isa_name(isa())); }

// setIsa(name) -> the level before. Tests run every op under each level the CPU has; a level it lacks throws.
Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  const Isa before = isa();
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  Isa want;
  if (name == "avx512") want = Isa::Avx512;
  else if (name == "avx2") want = Isa::Avx2;
  else if (name == "scalar") want = Isa::Scalar;
  else throw Napi::Error::New(info.Env(), "vlmkit native setIsa: '" + name + "' is not avx512, avx2 or scalar");
  if (!set_isa(want))
    throw Napi::Error::New(info.Env(), "vlmkit native setIsa: this CPU has at most " + std::string(isa_name(cpu_isa())) +
                                           ", not " + name);
  return Napi::String::New(info.Env(), isa_name(before));
}

// setSimd(on) -> whether SIMD kernels are in use afterwards. Off is the scalar level (tests use it to check the
// fallbacks); on goes back to the level VLMKIT_ISA or the CPU gives.
Napi::Value SetSimd(const Napi::CallbackInfo& info) {
  Isa level = Isa::Scalar;
  std::string error;
  if (barg(info[0])) isa_from_env(level, error);
  set_isa(level);
  return Napi::Boolean::New(info.Env(), has_avx2());
}

void register_cpu(Napi::Env env, Napi::Object exports) {
  Isa level;
  std::string error;
  if (!isa_from_env(level, error)) throw Napi::Error::New(env, "vlmkit: " + error);
  exports.Set("cpuFeatures", Napi::Function::New(env, CpuFeaturesOf));
  exports.Set("isa", Napi::Function::New(env, IsaNow));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa));
  exports.Set("setSimd", Napi::Function::New(env, SetSimd));
}
VK_REGISTER(register_cpu);

}  // namespace
}  // namespace vk
